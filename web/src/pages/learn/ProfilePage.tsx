/**
 * The user's profile: display name, bio, avatar URL (PATCH /v1/users/me with an updateMask of
 * the fields that changed; the server's field violations show next to their fields), and the
 * password change, after which this tab keeps going on its new session and every other one ends.
 */
import { useId, useRef, useState, type FormEvent } from 'react';
import { actionHeaders, api, ApiError, auth, call, client, newActionKey, type UserUpdate } from '../../api';
import { useAuth } from '../../auth/AuthContext';
import { Loading } from '../../components/Loading';
import { Alert, Button, Field, PageTitle } from '../../components/ui';
import { useAction } from '../../components/useAction';
import { asApiError, control, Status } from './common';
import { changedMask } from './progress';

const FIELDS = ['displayName', 'bio', 'avatarUrl'] as const;

export default function ProfilePage() {
  const { user, reload } = useAuth();
  if (!user) return <Loading />;
  return (
    <div className="max-w-xl">
      <PageTitle>Profile</PageTitle>
      <ProfileForm
        key={user.id}
        initial={{ displayName: user.displayName ?? '', bio: user.bio ?? '', avatarUrl: user.avatarUrl ?? '' }}
        email={user.email ?? ''}
        onSaved={reload}
      />
      {user.emailVerified === false && <VerifyEmailNotice />}
      <PasswordForm />
    </div>
  );
}


/** An unverified address: the account works, and the confirmation link can be mailed again
 * (a limited number of times: the server's refusal says when to try again). */
function VerifyEmailNotice() {
  const { busy, error, run } = useAction();
  const [sent, setSent] = useState(false);

  async function send() {
    setSent(await run(() => call(api.POST('/v1/users/me:sendVerificationEmail', {}))));
  }

  return (
    <section aria-labelledby="verify-heading" className="mt-8 flex flex-col gap-3 rounded-md border border-amber-300 px-4 py-3 dark:border-amber-700">
      <h2 id="verify-heading" className="text-lg font-semibold">
        Confirm your email address
      </h2>
      <p className="text-sm">Your address is not confirmed yet: open the link we mailed you when you signed up.</p>
      {sent ? (
        <p role="status" className="text-sm">A new link is on its way.</p>
      ) : (
        <Button type="button" onClick={() => void send()} disabled={busy} className="self-start">
          {busy ? 'Sending…' : 'Mail me a new link'}
        </Button>
      )}
      {error && (
        <Alert>
          {error.message}
          {error.retryAfter !== null && ` Try again in ${error.retryAfter} s.`}
        </Alert>
      )}
    </section>
  );
}

function ProfileForm({ initial, email, onSaved }: { initial: Record<(typeof FIELDS)[number], string>; email: string; onSaved: () => Promise<void> }) {
  const bioId = useId();
  const [values, setValues] = useState(initial);
  const [saved, setSaved] = useState(initial);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);
  const key = useRef(newActionKey());

  async function submit(event: FormEvent) {
    event.preventDefault();
    const mask = changedMask(FIELDS, saved, values);
    setNotice('');
    setError(null);
    if (mask.length === 0) {
      setNotice('Nothing to save.');
      return;
    }
    setBusy(true);
    try {
      const body: UserUpdate = { displayName: values.displayName.trim(), bio: values.bio, avatarUrl: values.avatarUrl.trim() };
      await call(api.PATCH('/v1/users/me', { params: { query: { updateMask: mask.join(',') } }, body, headers: actionHeaders(key.current) }));
      key.current = newActionKey();
      setSaved(values);
      setNotice('Profile saved.');
      await onSaved();
    } catch (e) {
      const err = asApiError(e);
      if (err.status >= 400 && err.status < 500) key.current = newActionKey();
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const set = (name: (typeof FIELDS)[number]) => (e: { target: { value: string } }) => setValues((v) => ({ ...v, [name]: e.target.value }));
  // Field paths are relative to the body the page sent (the user), e.g. `avatarUrl`.
  const fieldError = (f: (typeof FIELDS)[number]) => error?.field(f);
  const fieldErrors = FIELDS.some((f) => fieldError(f));
  const bioError = fieldError('bio');
  return (
    <form onSubmit={(e) => void submit(e)} noValidate className="flex flex-col gap-4" aria-labelledby="profile-heading">
      <h2 id="profile-heading" className="text-xl font-semibold">
        About you
      </h2>
      <p className="text-sm text-slate-600 dark:text-slate-400">Signed in as {email}.</p>
      <div className="flex items-center gap-4">
        {values.avatarUrl.startsWith('https://') ? (
          <img src={values.avatarUrl} alt="" className="size-16 rounded-full object-cover" referrerPolicy="no-referrer" />
        ) : (
          <span aria-hidden="true" className="flex size-16 items-center justify-center rounded-full bg-slate-200 text-2xl font-semibold dark:bg-slate-800">
            {(values.displayName || '?').slice(0, 1).toUpperCase()}
          </span>
        )}
      </div>
      <Field label="Display name" name="displayName" value={values.displayName} onChange={set('displayName')} required maxLength={80} autoComplete="name" error={fieldError('displayName')} />
      <div className="flex flex-col gap-1">
        <label htmlFor={bioId} className="text-sm font-medium">
          Bio
        </label>
        <textarea
          id={bioId}
          name="bio"
          value={values.bio}
          onChange={set('bio')}
          maxLength={1000}
          rows={4}
          aria-invalid={bioError ? true : undefined}
          aria-describedby={bioError ? `${bioId}-error` : undefined}
          className={control}
        />
        {bioError && (
          <p id={`${bioId}-error`} className="text-sm text-red-700 dark:text-red-400">
            {bioError}
          </p>
        )}
      </div>
      <Field label="Avatar URL" name="avatarUrl" type="url" inputMode="url" value={values.avatarUrl} onChange={set('avatarUrl')} maxLength={2048} placeholder="https://…" error={fieldError('avatarUrl')} />
      {error && !fieldErrors && <Alert>{error.message}</Alert>}
      {error && fieldErrors && <p role="alert" className="text-sm text-red-700 dark:text-red-400">Please correct the fields marked above.</p>}
      {notice && <Status>{notice}</Status>}
      <div>
        <Button type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Save profile'}
        </Button>
      </div>
    </form>
  );
}

function PasswordForm() {
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    setBusy(true);
    setError(null);
    setNotice('');
    try {
      await auth.changePassword(client, { currentPassword: String(data.get('currentPassword') ?? ''), newPassword: String(data.get('newPassword') ?? '') });
      form.reset();
      setNotice('Password changed. You stay signed in here; your other sessions have ended.');
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  }

  const fieldErrors = !!(error?.field('currentPassword') || error?.field('newPassword'));
  return (
    <form onSubmit={(e) => void submit(e)} className="mt-12 flex flex-col gap-4 border-t border-slate-200 pt-8 dark:border-slate-800" aria-labelledby="password-heading">
      <h2 id="password-heading" className="text-xl font-semibold">
        Change password
      </h2>
      <Field label="Current password" name="currentPassword" type="password" autoComplete="current-password" required maxLength={1024} error={error?.field('currentPassword')} />
      <Field label="New password" name="newPassword" type="password" autoComplete="new-password" required minLength={8} maxLength={1024} error={error?.field('newPassword')} />
      {error && !fieldErrors && <Alert>{error.message}</Alert>}
      {notice && <Status>{notice}</Status>}
      <div>
        <Button type="submit" disabled={busy}>
          {busy ? 'Changing…' : 'Change password'}
        </Button>
      </div>
    </form>
  );
}
