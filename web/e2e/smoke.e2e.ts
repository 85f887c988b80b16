/**
 * Smoke: register → (signed in) → catalog shows courses → logout → log in again → logout,
 * with an axe check of each page in light and dark, and a narrow (360 px) screenshot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_URL, go, open, seriousViolations, shot, type Harness } from './harness';

let h: Harness;
/** Whether the backend has the cookie session contract (a reload then keeps the user in). */
let cookieSessions = false;
const email = `e2e-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = 'correct horse battery staple 42';

async function noSeriousViolations(name: string) {
  const violations = await seriousViolations(h.page);
  expect(violations, `${name}: ${JSON.stringify(violations)}`).toEqual([]);
}

describe('smoke', () => {
  beforeAll(async () => {
    h = await open();
    const doc = (await (await fetch(new URL('/openapi.json', BASE_URL))).json()) as {
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    };
    cookieSessions = Object.entries(doc.components.schemas).some(
      ([name, schema]) => name.endsWith('CreateSessionRequest') && 'refreshTokenDelivery' in (schema.properties ?? {}),
    );
  });
  afterAll(async () => {
    await h?.browser.close();
  });

  it('shows server field errors next to their fields', async () => {
    const { page } = h;
    await page.goto('/register');
    await page.getByLabel('Name').fill('E2E Student');
    await page.getByLabel('Email').fill('not-an-email');
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    const email = page.getByLabel('Email');
    await expect.poll(() => email.getAttribute('aria-invalid')).toBe('true');
    const described = await email.getAttribute('aria-describedby');
    expect(described).toBeTruthy();
    expect(await page.locator(`[id="${described}"]`).textContent()).toBeTruthy();
    await shot(page, 'register-errors');
    await noSeriousViolations('register with errors');
  });

  it('registers, lands signed in on the catalog with courses', async () => {
    const { page } = h;
    await page.goto('/register');
    await page.getByLabel('Name').fill('E2E Student');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL('**/courses');
    await page.getByRole('heading', { name: 'Course catalog' }).waitFor();
    const courses = page.getByRole('list', { name: 'Courses' }).getByRole('listitem').filter({
      has: page.getByRole('heading'),
    });
    await courses.first().waitFor();
    expect(await courses.count()).toBeGreaterThan(0);
    await page.locator('summary').waitFor();
    expect(await page.locator('summary').textContent()).toContain('E2E Student');
    await shot(page, 'catalog-light');
    await noSeriousViolations('catalog (light)');
  });

  it('searches the catalog through the URL', async () => {
    const { page } = h;
    await page.getByLabel('Search').fill('zzzz-no-such-course');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/q=zzzz-no-such-course/);
    await page.getByText('No course matches').waitFor();
  });

  it('switches to the dark theme and remembers it', async () => {
    const { page } = h;
    await page.goto('/courses');
    await page.getByLabel('Theme').selectOption('dark');
    expect(await page.evaluate(() => document.documentElement.classList.contains('dark'))).toBe(true);
    await page.reload();
    expect(await page.evaluate(() => document.documentElement.classList.contains('dark'))).toBe(true);
    await page.getByRole('list', { name: 'Courses' }).waitFor();
    // The session survives a reload: restored from the HttpOnly refresh cookie.
    expect(cookieSessions).toBe(true);
    await page.locator('summary').waitFor();
    const cookies = await h.context.cookies();
    expect(cookies.find((c) => c.name === 'lf_refresh')?.httpOnly).toBe(true);
    expect(await page.evaluate(() => document.cookie)).not.toContain('lf_refresh');
    await shot(page, 'catalog-dark');
    await noSeriousViolations('catalog (dark)');
  });

  it('sends an anonymous visitor of a protected page to login, and back after it', async () => {
    const { page } = h;
    if (await page.locator('summary').isVisible()) {
      await page.locator('summary').click();
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.waitForURL('**/login');
    }
    await page.goto('/learn');
    await page.waitForURL(/\/login\?next=%2Flearn/);
    await shot(page, 'login');
    await noSeriousViolations('login');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL('**/learn');
    await page.getByRole('heading', { name: 'My learning' }).waitFor();
  });

  it('shows "not allowed" for another role\'s page and "not found" for nothing', async () => {
    const { page } = h;
    await go(page, '/admin/users');
    await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    await go(page, '/no/such/page');
    await page.getByRole('heading', { name: 'Page not found' }).waitFor();
    await noSeriousViolations('not found');
  });

  it('fits a 360 px wide screen', async () => {
    await h.page.setViewportSize({ width: 360, height: 740 });
    await go(h.page, '/courses');
    await h.page.getByRole('list', { name: 'Courses' }).waitFor();
    const overflow = await h.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(h.page, 'catalog-360');
  });

  it('logs out', async () => {
    const { page } = h;
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.locator('summary').click();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL('**/login');
    await page.getByRole('link', { name: 'Log in' }).waitFor();
    // Revoked on the server: a reload does not bring the session back.
    await page.reload();
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    await page.getByRole('link', { name: 'Log in' }).waitFor();
    expect(await page.locator('summary').count()).toBe(0);
    // No CSP violation nor uncaught error on any page (the gateway serves a strict CSP).
    expect(h.problems).toEqual([]);
  });
});
