/**
 * Account recovery through the real mail path: "forgot password" → the link read from the
 * SMTP sink → a new password → log in with it; and the verification link mailed at sign-up.
 * axe on each page; the answer never says whether an address has an account.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_URL, open, seriousViolations, shot, type Harness } from './harness';
import { linkMailedTo } from './mailbox';

let h: Harness;
const email = `e2e-reset-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = 'first password 123';
const newPassword = 'second password 456';

async function noSeriousViolations(name: string) {
  const violations = await seriousViolations(h.page);
  expect(violations, `${name}: ${JSON.stringify(violations)}`).toEqual([]);
}

describe('account recovery by email', () => {
  beforeAll(async () => {
    h = await open();
    const registered = await fetch(new URL('/v1/users:register', BASE_URL), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password, displayName: 'Reset Tester' }),
    });
    expect(registered.status).toBe(200);
  });
  afterAll(async () => {
    await h?.browser.close();
  });

  it('shows an unconfirmed address on the profile and mails a new link', async () => {
    // A context of its own: this signed-in session must not leak into the next tests.
    const context = await h.browser.newContext({ baseURL: BASE_URL });
    const page = await context.newPage();
    await page.goto('/login');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL('**/courses');
    await page.goto('/profile');
    await page.getByRole('heading', { name: 'Confirm your email address' }).waitFor();
    await page.getByRole('button', { name: 'Mail me a new link' }).click();
    await expect.poll(() => page.getByRole('status').first().textContent()).toContain('new link');
    await shot(page, 'profile-unverified');
    await context.close();
  });

  it('confirms the email with the mailed verification link', async () => {
    const { page } = h;
    const link = await linkMailedTo(email, '/verify-email');
    await page.goto(link);
    await page.getByRole('heading', { name: 'Confirm your email' }).waitFor();
    await noSeriousViolations('verify email');
    await page.getByRole('button', { name: 'Confirm my email address' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('confirmed');
    // The link works once.
    await page.goto(link);
    await page.getByRole('button', { name: 'Confirm my email address' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('used, expired or wrong');
  });

  it('answers alike for an unknown address', async () => {
    const { page } = h;
    await page.goto('/forgot-password');
    await page.getByLabel('Email').fill(`nobody-${Date.now()}@example.com`);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('If ');
  });

  it('resets the password from the mailed link and logs in with the new one', async () => {
    const { page } = h;
    await page.goto('/login');
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
    await noSeriousViolations('forgot password');
    await page.getByLabel('Email').fill(email);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(email);
    await shot(page, 'forgot-password-sent');

    const link = await linkMailedTo(email, '/reset-password');
    await page.goto(link);
    await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    await noSeriousViolations('reset password');
    // Too short: the server's field error shows next to the field.
    await page.getByLabel('New password').fill('short');
    await page.getByRole('button', { name: 'Set the new password' }).click();
    const field = page.getByLabel('New password');
    await expect.poll(() => field.getAttribute('aria-invalid')).toBe('true');
    await field.fill(newPassword);
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('password is changed');
    await shot(page, 'reset-password-done');

    await page.getByRole('link', { name: 'Log in with the new password' }).click();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Wrong email or password');
    await page.getByLabel('Password').fill(newPassword);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL('**/courses');
    expect(h.problems).toEqual([]);
  });
});
