/**
 * The admin's journey: the demo admin finds a user by email prefix → changes the role →
 * disables the account (each confirmed, shown at once) → sees both in the audit log, filtered
 * by action and by resource. axe on every screen, screenshots under web/test-results/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ADMIN, eventually, loginInBrowser, register, uniqueEmail } from './api';
import { go, open, seriousViolations, shot, type Harness } from './harness';

let h: Harness;
const prefix = `e2e-target-${Date.now()}`;
const email = uniqueEmail(prefix);
let userId = '';

async function noSeriousViolations(name: string) {
  const violations = await seriousViolations(h.page);
  expect(violations, `${name}: ${JSON.stringify(violations)}`).toEqual([]);
}

describe('admin screens', () => {
  beforeAll(async () => {
    h = await open();
    userId = await register(email, 'Target Person');
  });
  afterAll(async () => {
    await h?.browser.close();
  });

  it('finds a user by email prefix', async () => {
    const { page } = h;
    await loginInBrowser(page, DEMO_ADMIN.email, DEMO_ADMIN.password, '/admin/users');
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.getByRole('table').waitFor();
    await shot(page, 'admin-users');
    await noSeriousViolations('users');
    await page.setViewportSize({ width: 360, height: 740 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    await shot(page, 'admin-users-360');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByLabel('Search users').fill(prefix);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.waitForURL(/q=e2e-target/);
    const link = page.getByRole('link', { name: email });
    await eventually(async () => {
      if ((await link.count()) > 0) return true;
      await page.reload();
      await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
      return false;
    }, 'the new user in the directory');
    // Header and the one match (the unfiltered list may still be on screen for a moment).
    await expect.poll(() => page.getByRole('table').getByRole('row').count()).toBe(2);
    await page.getByLabel('Role').selectOption('ROLE_ADMIN');
    await page.getByText('No user matches.').waitFor();
    await page.getByLabel('Role').selectOption('ROLE_STUDENT');
    await link.click();
    await page.waitForURL(`**/admin/users/${userId}`);
    await page.getByRole('heading', { name: 'Target Person', level: 1 }).waitFor();
  });

  it('changes the role after a confirmation, shown at once', async () => {
    const { page } = h;
    await page.getByLabel('New role').selectOption('ROLE_INSTRUCTOR');
    await page.getByRole('button', { name: 'Change role' }).click();
    const dialog = page.getByRole('dialog', { name: 'Change the role?' });
    await dialog.waitFor();
    await noSeriousViolations('role dialog');
    await shot(page, 'admin-role-dialog');
    await dialog.getByRole('button', { name: 'Change role' }).click();
    await page.getByRole('status').filter({ hasText: 'Role changed to Instructor.' }).waitFor();
    await page.locator('dd').filter({ hasText: /^Instructor$/ }).waitFor();
  });

  it('cancels, then disables the account', async () => {
    const { page } = h;
    await page.getByRole('button', { name: 'Disable account' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    expect(await page.locator('dd').filter({ hasText: /^Active$/ }).count()).toBe(1);

    await page.getByRole('button', { name: 'Disable account' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Disable account' }).click();
    await page.getByRole('status').filter({ hasText: 'Account disabled.' }).waitFor();
    await page.locator('dd').filter({ hasText: /^Disabled$/ }).waitFor();
    await page.getByRole('button', { name: 'Enable account' }).waitFor();
    await shot(page, 'admin-user');
    await noSeriousViolations('user detail');
  });

  it('shows the directory with the new role and status (read your writes)', async () => {
    const { page } = h;
    await go(page, `/admin/users?q=${prefix}&disabled=true`);
    const row = page.getByRole('row').filter({ hasText: email });
    await row.waitFor();
    expect(await row.textContent()).toContain('Instructor');
    expect(await row.textContent()).toContain('Disabled');
  });

  it('sees both changes in the audit log, filtered', async () => {
    const { page } = h;
    await go(page, '/admin/audit');
    await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
    await page.getByRole('table').waitFor();
    await page.getByLabel('Action').fill('user.role_change');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/action=user.role_change/);
    // Only role changes once the filtered page is in (the unfiltered one may show a moment).
    const actions = () => page.locator('tbody tr td:nth-of-type(1)').allTextContents();
    await expect.poll(async () => [...new Set(await actions())]).toEqual(['user.role_change']);
    const roleRow = page.getByRole('row').filter({ hasText: `users/${userId}` });
    await roleRow.first().waitFor();
    expect(await roleRow.count()).toBe(1);
    await shot(page, 'admin-audit');
    await noSeriousViolations('audit log');

    await page.getByLabel('Action').fill('user.disable');
    await page.getByLabel('Resource', { exact: true }).fill(`users/${userId}`);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/action=user.disable/);
    const rows = page.locator('tbody tr');
    // The previous filter's row stays until the new page is in: wait for the new content.
    await expect.poll(async () => (await actions()).join()).toBe('user.disable');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain(`users/${userId}`);
    expect(await rows.first().textContent()).toContain('success');

    // Everything about that user (the setup logged in once to learn its id), from the
    // server's resource filter.
    await go(page, `/admin/audit?resource=users/${userId}`);
    await expect.poll(async () => [...new Set(await actions())].sort()).toEqual(['session.create', 'user.disable', 'user.register', 'user.role_change']);

    await page.setViewportSize({ width: 360, height: 740 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(page, 'admin-audit-360');
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(h.problems).toEqual([]);
  });
});
