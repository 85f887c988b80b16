import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, call } from '../../api';
import { Alert, Button, Field, PageTitle } from '../../components/ui';
import { useAction } from '../../components/useAction';

/** The mailed link's page (`/reset-password?token=…`): a new password for the account. Every
 * session of the account ends; the user logs in again with the new password. */
export default function ResetPasswordPage() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const { busy, error, run } = useAction();
  const [done, setDone] = useState(false);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const newPassword = String(new FormData(event.currentTarget).get('newPassword'));
    setDone(await run(() => call(api.POST('/v1/passwordResets:confirm', { body: { token, newPassword } }))));
  }

  if (!token) {
    return (
      <div className="mx-auto max-w-sm">
        <PageTitle>Choose a new password</PageTitle>
        <Alert>This link is incomplete. Open the link from the email again, or ask for a new one.</Alert>
        <p className="mt-6 text-sm">
          <Link to="/forgot-password" className="font-medium text-brand-600 underline dark:text-brand-50">
            Ask for a new link
          </Link>
        </p>
      </div>
    );
  }
  const tokenError = error?.field('token');
  return (
    <div className="mx-auto max-w-sm">
      <PageTitle>Choose a new password</PageTitle>
      {done ? (
        <div role="status" className="flex flex-col gap-4">
          <p>Your password is changed, and every session of your account has ended.</p>
          <Link to="/login" className="font-medium text-brand-600 underline dark:text-brand-50">
            Log in with the new password
          </Link>
        </div>
      ) : (
        <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
          {error && (
            <Alert>
              {tokenError ? 'This link is used, expired or wrong. Ask for a new one.' : error.message}
            </Alert>
          )}
          <Field
            label="New password"
            name="newPassword"
            type="password"
            autoComplete="new-password"
            required
            maxLength={1024}
            error={error?.field('newPassword')}
          />
          <Button type="submit" disabled={busy}>
            {busy ? 'Saving…' : 'Set the new password'}
          </Button>
          {tokenError && (
            <Link to="/forgot-password" className="text-sm font-medium text-brand-600 underline dark:text-brand-50">
              Ask for a new link
            </Link>
          )}
        </form>
      )}
    </div>
  );
}
