/**
 * Test setup through the public HTTP API (the gateway at E2E_BASE_URL), as a script would:
 * accounts, roles, enrollments and progress that the browser journeys then look at.
 */
import type { Page } from 'playwright-core';
import { BASE_URL } from './harness';

export const DEMO_ADMIN = { email: 'admin@learnflow.dev', password: 'admin-demo-pass' };
export const PASSWORD = 'correct horse battery staple 42';

export function uniqueEmail(prefix: string): string {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

/** The consistency token of each caller's last write, so its next reads see it. */
const lastWrite = new Map<string, string>();

/** A JSON request; throws with the body on a non-2xx answer. Reads follow the caller's writes. */
export async function request<T = Record<string, unknown>>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const consistency = lastWrite.get(token ?? '');
  if (consistency) headers['X-Consistency-Token'] = consistency;
  const response = await fetch(new URL(path, BASE_URL), {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  const data = (text ? JSON.parse(text) : {}) as T & { consistencyToken?: string };
  const written = data.consistencyToken ?? response.headers.get('X-Consistency-Token');
  if (written) lastWrite.set(token ?? '', written);
  return data;
}

/** Registers an account and returns its id (the answer names no user: the new owner asks). */
export async function register(email: string, displayName: string): Promise<string> {
  await request('POST', '/v1/users:register', { email, password: PASSWORD, displayName });
  const token = await login(email);
  const me = await request<{ user: { id: string } }>('GET', '/v1/users/me', undefined, token);
  return me.user.id;
}

export async function login(email: string, password = PASSWORD): Promise<string> {
  const data = await request<{ accessToken: string; consistencyToken?: string }>('POST', '/v1/sessions', { email, password });
  // The new session reads after the login (and so after a registration just before it).
  if (data.consistencyToken) lastWrite.set(data.accessToken, data.consistencyToken);
  return data.accessToken;
}

/** Logs in through the app's login page. */
export async function loginInBrowser(page: Page, email: string, password: string, next = '/courses'): Promise<void> {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`**${next}`);
}

/** Polls `check` (a read model catches up shortly after a write) until it is true. */
export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  throw new Error(`timed out waiting for ${what}`);
}
