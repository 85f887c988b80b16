import { useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { ApiError, newActionKey } from '../api';
import { useAuth } from '../auth/AuthContext';
import { Alert, Button, Field, PageTitle } from '../components/ui';

export default function RegisterPage() {
  const { register, login } = useAuth();
  const navigate = useNavigate();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  // One key per registration attempt: resubmitting the same form after a network error is
  // the same action, so the server does not create the account twice.
  const actionKey = useRef(newActionKey());

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const email = String(form.get('email'));
    const password = String(form.get('password'));
    setBusy(true);
    setError(null);
    try {
      await register({ email, password, displayName: String(form.get('displayName')) }, actionKey.current);
      actionKey.current = newActionKey();
      await login(email, password);
      navigate('/courses', { replace: true });
    } catch (e) {
      const apiError = e instanceof ApiError ? e : new ApiError('UNKNOWN', String(e), 0);
      // A refused request is done with: a corrected form is a new action.
      if (apiError.status >= 400 && apiError.status < 500) actionKey.current = newActionKey();
      setError(apiError);
    } finally {
      setBusy(false);
    }
  }

  const fieldErrors = error ? Object.keys(error.fieldViolations).length : 0;
  return (
    <div className="mx-auto max-w-sm">
      <PageTitle>Create an account</PageTitle>
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        {error && (
          <Alert>
            {fieldErrors > 0 ? 'Please correct the fields marked below.' : error.message}
          </Alert>
        )}
        <Field label="Name" name="displayName" autoComplete="name" required maxLength={80} error={error?.field('displayName')} />
        <Field label="Email" name="email" type="email" autoComplete="email" required maxLength={254} error={error?.field('email')} />
        <Field label="Password" name="password" type="password" autoComplete="new-password" required maxLength={1024} error={error?.field('password')} />
        <Button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create account'}
        </Button>
      </form>
      <p className="mt-6 text-sm">
        Already have an account?{' '}
        <Link to="/login" className="font-medium text-brand-600 underline dark:text-brand-50">
          Log in
        </Link>
      </p>
    </div>
  );
}
