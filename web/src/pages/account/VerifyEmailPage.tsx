import { useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, call } from '../../api';
import { Alert, Button, PageTitle } from '../../components/ui';
import { useAction } from '../../components/useAction';

/** The verification link's page (`/verify-email?token=…`). It confirms on a click, not on
 * load: mail scanners that open links must not spend the token. */
export default function VerifyEmailPage() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const { busy, error, run } = useAction();
  const [done, setDone] = useState(false);

  async function confirm() {
    setDone(await run(() => call(api.POST('/v1/emailVerifications:confirm', { body: { token } }))));
  }

  return (
    <div className="mx-auto max-w-sm">
      <PageTitle>Confirm your email</PageTitle>
      {done ? (
        <p role="status">
          Thank you: your email address is confirmed.{' '}
          <Link to="/courses" className="font-medium text-brand-600 underline dark:text-brand-50">
            Go to the catalog
          </Link>
        </p>
      ) : (
        <div className="flex flex-col gap-4">
          {(error || !token) && (
            <Alert>
              {!token || error?.field('token')
                ? 'This link is used, expired or wrong. Ask for a new one from your profile.'
                : error?.message}
            </Alert>
          )}
          <Button type="button" onClick={confirm} disabled={busy || !token}>
            {busy ? 'Confirming…' : 'Confirm my email address'}
          </Button>
        </div>
      )}
    </div>
  );
}
