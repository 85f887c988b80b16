import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { api, call } from '../../api';
import { Alert, Button, Field, PageTitle } from '../../components/ui';
import { useAction } from '../../components/useAction';

/** Asks for a reset link. The server answers alike whether or not the address has an
 * account, and so does this page: it never says which emails exist. */
export default function ForgotPasswordPage() {
  const { busy, error, run } = useAction();
  const [sentTo, setSentTo] = useState<string | null>(null);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const email = String(new FormData(event.currentTarget).get('email')).trim();
    if (await run(() => call(api.POST('/v1/passwordResets', { body: { email } })))) setSentTo(email);
  }

  return (
    <div className="mx-auto max-w-sm">
      <PageTitle>Reset your password</PageTitle>
      {sentTo ? (
        <p role="status" className="rounded-md border border-slate-300 px-4 py-3 dark:border-slate-600">
          If <strong>{sentTo}</strong> has a LearnFlow account, a link to choose a new password is on
          its way. It works once, for 30 minutes.
        </p>
      ) : (
        <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
          <p className="text-sm text-slate-600 dark:text-slate-300">
            Enter your account's email and we will mail you a link to choose a new password.
          </p>
          {error && (
            <Alert>
              {error.message}
              {error.retryAfter !== null && ` Try again in ${error.retryAfter} s.`}
            </Alert>
          )}
          <Field label="Email" name="email" type="email" autoComplete="email" required maxLength={254} error={error?.field('email')} />
          <Button type="submit" disabled={busy}>
            {busy ? 'Sending…' : 'Send the link'}
          </Button>
        </form>
      )}
      <p className="mt-6 text-sm">
        <Link to="/login" className="font-medium text-brand-600 underline dark:text-brand-50">
          Back to log in
        </Link>
      </p>
    </div>
  );
}
