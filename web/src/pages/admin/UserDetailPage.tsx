/**
 * One user, for admins: profile, role change and disable/enable, each confirmed. The
 * response's user is shown at once; the write's consistency token (sent by the service layer
 * on the next requests) makes the directory and the audit log show it too.
 */
import { useEffect, useState } from 'react';
import { Link, useParams } from 'react-router';
import { actionHeaders, api, call, newActionKey, type ApiError, type Role, type User } from '../../api';
import { useAuth } from '../../auth/AuthContext';
import { Loading } from '../../components/Loading';
import { ErrorSummary, Notice, Select, asApiError, danger, formatTime, secondary, useConfirm } from '../../components/staff';
import { Alert, Button, PageTitle } from '../../components/ui';
import { ROLE_NAMES } from '../studio/labels';

const ROLES: Role[] = ['ROLE_STUDENT', 'ROLE_INSTRUCTOR', 'ROLE_ADMIN'];

export default function UserDetailPage() {
  const { userId = '' } = useParams();
  const { user: me } = useAuth();
  const [user, setUser] = useState<User | null>(null);
  const [role, setRole] = useState<Role>('ROLE_STUDENT');
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);
  const [dialog, confirm] = useConfirm();

  useEffect(() => {
    const abort = new AbortController();
    call(api.GET('/v1/users/{user_id}', { params: { path: { user_id: userId } }, signal: abort.signal }))
      .then((data) => {
        setUser(data.user ?? null);
        setRole(data.user?.role ?? 'ROLE_STUDENT');
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setLoadError(asApiError(e));
      });
    return () => abort.abort();
  }, [userId]);

  async function write(work: () => Promise<User | undefined>, done: string) {
    setBusy(true);
    setError(null);
    setNotice('');
    try {
      const changed = await work();
      if (changed) {
        setUser(changed);
        setRole(changed.role ?? 'ROLE_STUDENT');
      }
      setNotice(done);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  }

  async function changeRole() {
    if (!user) return;
    const ok = await confirm({
      title: 'Change the role?',
      body: (
        <>
          {user.displayName} ({user.email}) becomes <strong>{ROLE_NAMES[role]}</strong>. Their next token carries the new role.
        </>
      ),
      confirm: 'Change role',
    });
    if (!ok) return;
    await write(async () => {
      const data = await call(api.POST('/v1/users/{user_id}:setRole', { params: { path: { user_id: userId } }, body: { role }, headers: actionHeaders(newActionKey()) }));
      return data.user;
    }, `Role changed to ${ROLE_NAMES[role]}.`);
  }

  async function toggleDisabled() {
    if (!user) return;
    const disable = !user.disabled;
    const ok = await confirm({
      title: disable ? 'Disable this account?' : 'Enable this account?',
      body: disable ? `${user.email} can no longer log in, and their sessions end.` : `${user.email} can log in again.`,
      confirm: disable ? 'Disable account' : 'Enable account',
      dangerous: disable,
    });
    if (!ok) return;
    await write(async () => {
      const data = await call(api.POST('/v1/users/{user_id}:setDisabled', { params: { path: { user_id: userId } }, body: { disabled: disable }, headers: actionHeaders(newActionKey()) }));
      return data.user;
    }, disable ? 'Account disabled.' : 'Account enabled.');
  }

  if (loadError) {
    return (
      <div>
        <PageTitle>User</PageTitle>
        <Alert>{loadError.message}</Alert>
      </div>
    );
  }
  if (!user) return <Loading label="Loading the user…" />;
  const self = me?.id === user.id;

  return (
    <div className="flex max-w-2xl flex-col gap-6">
      {dialog}
      <div>
        <p className="mb-2 text-sm">
          <Link to="/admin/users" className="underline">
            ← Users
          </Link>
        </p>
        <PageTitle>{user.displayName || user.email || 'User'}</PageTitle>
        <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-1 text-sm">
          <dt className="font-medium">Email</dt>
          <dd className="break-all">{user.email}</dd>
          <dt className="font-medium">Role</dt>
          <dd>{ROLE_NAMES[user.role ?? 'ROLE_UNSPECIFIED']}</dd>
          <dt className="font-medium">Status</dt>
          <dd>{user.disabled ? <strong className="text-red-700 dark:text-red-400">Disabled</strong> : 'Active'}</dd>
          <dt className="font-medium">Joined</dt>
          <dd>{formatTime(user.createTime)}</dd>
          {user.bio && (
            <>
              <dt className="font-medium">Bio</dt>
              <dd>{user.bio}</dd>
            </>
          )}
          <dt className="font-medium">ID</dt>
          <dd className="break-all font-mono text-xs">{user.id}</dd>
        </dl>
        <p className="mt-3 flex flex-wrap gap-4 text-sm">
          <Link to={`/admin/audit?actor=${user.id}`} className="underline">
            Audit events by this user
          </Link>
          <Link to={`/admin/audit?resource=${encodeURIComponent(`users/${user.id}`)}`} className="underline">
            Audit events about this user
          </Link>
        </p>
      </div>

      {notice && <Notice>{notice}</Notice>}
      <ErrorSummary error={error} />

      <section aria-labelledby="role-heading" className="flex flex-col gap-3">
        <h2 id="role-heading" className="text-xl font-semibold">
          Role
        </h2>
        <div className="flex flex-wrap items-end gap-3">
          <Select label="New role" value={role} onChange={(e) => setRole(e.target.value as Role)} disabled={self}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {ROLE_NAMES[r]}
              </option>
            ))}
          </Select>
          <Button type="button" disabled={busy || self || role === user.role} onClick={() => void changeRole()}>
            Change role
          </Button>
        </div>
        {self && <p className="text-sm text-slate-600 dark:text-slate-400">You cannot change your own role or disable yourself.</p>}
      </section>

      <section aria-labelledby="access-heading" className="flex flex-col gap-3">
        <h2 id="access-heading" className="text-xl font-semibold">
          Access
        </h2>
        <Button type="button" className={`self-start ${user.disabled ? secondary : danger}`} disabled={busy || self} onClick={() => void toggleDisabled()}>
          {user.disabled ? 'Enable account' : 'Disable account'}
        </Button>
      </section>
    </div>
  );
}
