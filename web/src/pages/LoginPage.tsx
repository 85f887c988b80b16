import { type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { useAuth } from '../auth/AuthContext';
import { useAction } from '../components/useAction';
import { safeNext } from '../routes/guards';
import { Alert, Button, Field, PageTitle } from '../components/ui';

export default function LoginPage() {
  const { login } = useAuth();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const { busy, error, run } = useAction();

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    if (await run(() => login(String(form.get('email')), String(form.get('password'))))) {
      navigate(safeNext(params.get('next')), { replace: true });
    }
  }

  return (
    <div className="mx-auto max-w-sm">
      <PageTitle>Log in</PageTitle>
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        {error && (
          <Alert>
            {error.code === 'UNAUTHENTICATED' ? 'Wrong email or password.' : error.message}
            {error.retryAfter !== null && ` Try again in ${error.retryAfter} s.`}
          </Alert>
        )}
        <Field label="Email" name="email" type="email" autoComplete="email" required error={error?.field('email')} />
        <Field label="Password" name="password" type="password" autoComplete="current-password" required error={error?.field('password')} />
        <Button type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </Button>
      </form>
      <p className="mt-4 text-sm">
        <Link to="/forgot-password" className="font-medium text-brand-600 underline dark:text-brand-50">
          Forgot your password?
        </Link>
      </p>
      <p className="mt-6 text-sm">
        New here?{' '}
        <Link to="/register" className="font-medium text-brand-600 underline dark:text-brand-50">
          Create an account
        </Link>
      </p>
    </div>
  );
}
