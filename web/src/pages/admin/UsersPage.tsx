/**
 * The user directory for admins: search (a prefix of the email, or of the name or any of its
 * words), filter by role and by disabled, paged. Filters live in the URL (?q=&role=&disabled=).
 */
import { useEffect, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, call, type ApiError, type ListUsersQuery, type Role, type User } from '../../api';
import { Loading } from '../../components/Loading';
import { ErrorSummary, Pager, Select, TableScroll, asApiError, control, formatTime, td, th, usePageTokens } from '../../components/staff';
import { Button, PageTitle } from '../../components/ui';
import { ROLE_NAMES } from '../studio/labels';

const PAGE_SIZE = 20;
const ROLES: Role[] = ['ROLE_STUDENT', 'ROLE_INSTRUCTOR', 'ROLE_ADMIN'];

export default function UsersPage() {
  const [params, setParams] = useSearchParams();
  const q = params.get('q') ?? '';
  const role = (params.get('role') ?? '') as Role | '';
  const disabled = params.get('disabled') ?? '';
  const pages = usePageTokens();
  const { reset, token } = pages;
  const [users, setUsers] = useState<User[] | null>(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => reset(), [q, role, disabled, reset]);

  useEffect(() => {
    const abort = new AbortController();
    const query: ListUsersQuery = { pageSize: PAGE_SIZE };
    if (q) query.q = q;
    if (role) query.role = role;
    if (disabled) query.disabled = disabled === 'true';
    if (token) query.pageToken = token;
    setError(null);
    call(api.GET('/v1/users', { params: { query }, signal: abort.signal }))
      .then((data) => {
        setUsers(data.users ?? []);
        setNext(data.nextPageToken ?? '');
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(asApiError(e));
      });
    return () => abort.abort();
  }, [q, role, disabled, token]);

  function update(changes: Record<string, string>) {
    const changed = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      if (value) changed.set(key, value);
      else changed.delete(key);
    }
    setParams(changed);
  }

  function search(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    update({ q: String(new FormData(event.currentTarget).get('q') ?? '').trim() });
  }

  return (
    <div>
      <PageTitle>Users</PageTitle>
      <form role="search" onSubmit={search} className="mb-4 flex flex-wrap items-end gap-3">
        <label className="flex min-w-0 flex-1 flex-col gap-1 text-sm font-medium sm:max-w-md">
          Search users
          <input name="q" type="search" defaultValue={q} key={q} maxLength={200} placeholder="Email or name prefix" className={control} />
        </label>
        <Button type="submit">Search</Button>
      </form>
      <div className="mb-4 flex flex-wrap gap-3">
        <Select label="Role" value={role} onChange={(e) => update({ role: e.target.value })}>
          <option value="">Any role</option>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {ROLE_NAMES[r]}
            </option>
          ))}
        </Select>
        <Select label="Status" value={disabled} onChange={(e) => update({ disabled: e.target.value })}>
          <option value="">Any status</option>
          <option value="false">Active</option>
          <option value="true">Disabled</option>
        </Select>
      </div>
      <ErrorSummary error={error} />
      {!users && !error && <Loading label="Loading users…" />}
      {users && users.length === 0 && <p>No user matches.</p>}
      {users && users.length > 0 && (
        <TableScroll label="Users table">
          <table className="w-full min-w-[40rem] divide-y divide-slate-200 dark:divide-slate-800">
            <caption className="sr-only">Users, by email{q ? `, matching “${q}”` : ''}</caption>
            <thead className="bg-slate-50 dark:bg-slate-900">
              <tr>
                <th scope="col" className={th}>Email</th>
                <th scope="col" className={th}>Name</th>
                <th scope="col" className={th}>Role</th>
                <th scope="col" className={th}>Status</th>
                <th scope="col" className={th}>Joined</th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-200 dark:divide-slate-800">
              {users.map((user) => (
                <tr key={user.id}>
                  <th scope="row" className={`${td} text-left font-medium`}>
                    <Link to={`/admin/users/${user.id}`} className="break-all text-brand-700 underline dark:text-brand-50">
                      {user.email}
                    </Link>
                  </th>
                  <td className={td}>{user.displayName}</td>
                  <td className={td}>{ROLE_NAMES[user.role ?? 'ROLE_UNSPECIFIED']}</td>
                  <td className={td}>{user.disabled ? <strong className="text-red-700 dark:text-red-400">Disabled</strong> : 'Active'}</td>
                  <td className={td}>{formatTime(user.createTime)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      {users && <Pager pages={pages} next={next} />}
    </div>
  );
}
