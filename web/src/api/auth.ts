/**
 * The session endpoints (contract: web/README.md). The refresh token travels only as an
 * HttpOnly cookie scoped to /v1/sessions:refresh and :revoke; this code never sees it.
 */
import { call, type ApiClient } from './client';
import { COOKIE_DELIVERY, type SessionGrant } from './session';
import type { ChangePasswordBody, LoginBody, RegisterBody, User } from './types';

type WithDelivery<T> = T & { refreshTokenDelivery?: typeof COOKIE_DELIVERY };

export async function login({ api, session }: ApiClient, body: LoginBody): Promise<void> {
  const withCookie: WithDelivery<LoginBody> = { ...body, refreshTokenDelivery: COOKIE_DELIVERY };
  const grant = await call(api.POST('/v1/sessions', { body: withCookie }));
  session.adopt(grant as SessionGrant);
}

export async function register(
  client: ApiClient,
  body: RegisterBody,
  actionKey?: string,
): Promise<void> {
  const headers = actionKey ? { 'Idempotency-Key': actionKey } : undefined;
  await call(client.api.POST('/v1/users:register', { body, headers }));
}

/** Restores the session after a page load from the refresh cookie; false when there is none. */
export function restore({ session }: ApiClient): Promise<boolean> {
  return session.refresh();
}

export async function currentUser({ api }: ApiClient): Promise<User> {
  const { user } = await call(api.GET('/v1/users/me'));
  if (!user) throw new Error('GET /v1/users/me answered without a user');
  return user;
}

/** Ends the session on the server (clears the cookie) and forgets it here, whatever happens. */
export async function logout({ api, session }: ApiClient, allSessions = false): Promise<void> {
  const body = allSessions ? { allSessions: true } : { refreshTokenDelivery: COOKIE_DELIVERY };
  try {
    await call(api.POST('/v1/sessions:revoke', { body: body as never }));
  } catch {
    // Signed out locally regardless: a failed revoke must not keep the user signed in here.
  } finally {
    session.clear();
  }
}

/**
 * Changes the password. The server ends every other session and answers with a new one for
 * this tab: its access token replaces the in-memory one (the refresh token comes as the cookie).
 */
export async function changePassword(
  { api, session }: ApiClient,
  body: Pick<ChangePasswordBody, 'currentPassword' | 'newPassword'>,
): Promise<void> {
  const withCookie: ChangePasswordBody = { ...body, refreshTokenDelivery: COOKIE_DELIVERY };
  const grant = await call(api.POST('/v1/users/me:changePassword', { body: withCookie }));
  session.adopt(grant as SessionGrant);
}
