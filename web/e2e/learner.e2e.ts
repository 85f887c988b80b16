/**
 * The learner's journey against the real stack and the demo catalog ("Python Foundations" has
 * an article, a video, a quiz and a code exercise): register → catalog → course → enrol →
 * every lesson type (the quiz failed, then passed) → 100 % → certificate; the dashboard's
 * resume link; progress arriving live over SSE; a comment posted and edited; a profile field
 * error shown next to its field; a password change that keeps the user signed in. Each page is
 * checked with axe and photographed (light, dark, and 360 px).
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_URL, go, open, seriousViolations, shot, type Harness } from './harness';

let h: Harness;
const stamp = `${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
const email = `learner-${stamp}@example.com`;
const name = `Lena Learner ${stamp.slice(-4)}`;
let password = 'correct horse battery staple 42';
const COURSE = 'Python Foundations';
let courseUrl = '';
let courseId = '';
const lessonUrls: string[] = [];
let certificateUrl = '';

async function check(name: string, page: Page = h.page) {
  const violations = await seriousViolations(page);
  expect(violations, `${name}: ${JSON.stringify(violations)}`).toEqual([]);
}

/** Light and dark screenshots (and axe in both) of the page as it is now. */
async function both(shotName: string) {
  await shot(h.page, `${shotName}-light`);
  await check(`${shotName} (light)`);
  await h.page.evaluate(() => document.documentElement.classList.add('dark'));
  await shot(h.page, `${shotName}-dark`);
  await check(`${shotName} (dark)`);
  await h.page.evaluate(() => document.documentElement.classList.remove('dark'));
}

async function lessonHeading(title: string, page: Page = h.page) {
  await page.getByRole('heading', { level: 1, name: title }).first().waitFor();
}

async function api(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('Content-Type', 'application/json');
  if (init.token) headers.set('Authorization', `Bearer ${init.token}`);
  return fetch(new URL(path, BASE_URL), { ...init, headers });
}

describe('learner journey', () => {
  beforeAll(async () => {
    h = await open();
    // Reduced motion: no page fade, so screenshots are taken of the settled page (and the
    // app's reduced-motion path is the one exercised).
    await h.page.emulateMedia({ reducedMotion: 'reduce' });
  });
  afterAll(async () => {
    await h?.browser.close();
  });

  it('registers and opens a course from the catalog', async () => {
    const { page } = h;
    await page.goto('/register');
    await page.getByLabel('Name').fill(name);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL('**/courses');
    await page.getByRole('link', { name: COURSE }).click();
    await page.getByRole('heading', { level: 1, name: COURSE }).waitFor();
    courseUrl = new URL(page.url()).pathname;
    const outline = page.getByRole('list', { name: 'Lessons' }).getByRole('listitem');
    expect(await outline.count()).toBe(4);
    expect(await page.getByRole('list', { name: 'Tags' }).textContent()).toContain('python');
    await both('course');
  });

  it('enrols, and the enrolment shows at once', async () => {
    const { page } = h;
    await page.getByRole('button', { name: 'Enrol' }).click();
    await page.getByRole('status').filter({ hasText: 'You are enrolled.' }).waitFor();
    await page.getByRole('link', { name: 'Start the first lesson' }).click();
    await lessonHeading('Why Python?');
    const path = new URL(page.url()).pathname;
    courseId = path.split('/')[2] ?? '';
    lessonUrls.push(path);
    // The outline sidebar lists the lessons; progress arrives over the SSE stream.
    await page.getByRole('navigation', { name: 'Course outline' }).waitFor();
    await page.getByText('Progress updates live.').waitFor();
  });

  it('completes the article, then resumes from the dashboard at the next lesson', async () => {
    const { page } = h;
    await page.getByRole('button', { name: 'Mark complete' }).click();
    await page.getByText('✓ Completed').waitFor();
    expect(await page.getByRole('progressbar', { name: 'Course progress' }).getAttribute('aria-valuenow')).toBe('25');
    await both('lesson-article');
    await go(page, '/learn');
    await page.getByRole('heading', { name: 'My learning' }).waitFor();
    const resume = page.getByRole('link', { name: `Resume ${COURSE}` });
    await resume.waitFor();
    expect(await page.getByRole('progressbar', { name: `Progress in ${COURSE}` }).getAttribute('aria-valuenow')).toBe('25');
    await both('dashboard');
    await resume.click();
    await lessonHeading('Setting up your editor');
    lessonUrls.push(new URL(page.url()).pathname);
  });

  it('plays the video lesson and completes it', async () => {
    const { page } = h;
    const video = page.locator('video');
    expect(await video.getAttribute('controls')).not.toBeNull();
    expect(await video.getAttribute('src')).toMatch(/^https:\/\//);
    await page.getByRole('button', { name: 'Mark complete' }).click();
    await page.getByText('✓ Completed').waitFor();
    await both('lesson-video');
    await page.getByRole('link', { name: 'Next lesson →' }).click();
    await lessonHeading('Check your understanding: values and types');
    lessonUrls.push(new URL(page.url()).pathname);
  });

  it('fails the quiz, then passes it', async () => {
    const { page } = h;
    const q = (n: number) => page.getByRole('group', { name: new RegExp(`^${n}\\. `) });
    // Wrong everywhere.
    await q(1).getByLabel('int', { exact: true }).check();
    await q(2).getByLabel('list', { exact: true }).check();
    await q(3).getByLabel('2', { exact: true }).check();
    await page.getByRole('button', { name: 'Submit answers' }).click();
    await page.getByText(/Not passed: you scored \d+%/).waitFor();
    await both('lesson-quiz-failed');
    // Right everywhere (the second question has two right choices).
    await q(1).getByLabel('int', { exact: true }).uncheck();
    await q(1).getByLabel('float', { exact: true }).check();
    await q(2).getByLabel('list', { exact: true }).uncheck();
    await q(2).getByLabel('tuple', { exact: true }).check();
    await q(2).getByLabel('str', { exact: true }).check();
    await q(3).getByLabel('2', { exact: true }).uncheck();
    await q(3).getByLabel('3', { exact: true }).check();
    await page.getByRole('button', { name: 'Submit another attempt' }).click();
    await page.getByText(/Passed: you scored 100%/).waitFor();
    await page.getByText('Best score: 100%.').waitFor();
    // Passing completes the lesson: its outline entry gets its tick.
    const outline = page.getByRole('navigation', { name: 'Course outline' });
    await outline.getByRole('link', { name: /values and types \(completed\)/ }).waitFor();
    await page.getByRole('link', { name: 'Next lesson →' }).click();
    await lessonHeading('Exercise: FizzBuzz');
    lessonUrls.push(new URL(page.url()).pathname);
  });

  it('shows the code exercise in an accessible code area', async () => {
    const { page } = h;
    const code = page.getByLabel('Your code (python)');
    expect(await code.inputValue()).toContain('def fizzbuzz');
    await code.fill('def fizzbuzz(n: int) -> str:\n    return str(n)\n');
    await both('lesson-code');
  });

  it('posts a comment on the lesson and edits it', async () => {
    const { page } = h;
    await page.getByLabel('Add a comment').fill('Is the starter signature required?');
    await page.getByRole('button', { name: 'Post comment' }).click();
    const comments = page.getByRole('list', { name: 'Comments' });
    await comments.getByText('Is the starter signature required?').waitFor();
    await comments.getByRole('button', { name: 'Edit your comment' }).click();
    await page.getByLabel('Edit your comment').fill('Is the starter signature required? (answered: yes)');
    await page.getByRole('button', { name: 'Save' }).click();
    await comments.getByText('(answered: yes)').waitFor();
    expect(await comments.textContent()).toContain(name);
    // A reply, then deleting it (own comment; the confirmation dialog accepted).
    await comments.getByRole('button', { name: `Reply to ${name}` }).click();
    await page.getByLabel(`Reply to ${name}`).fill('Replying to myself, to delete it.');
    await page.getByRole('button', { name: 'Post reply' }).click();
    const replies = comments.getByRole('list', { name: 'Replies' });
    await replies.getByText('Replying to myself').waitFor();
    await check('lesson with comments');
    page.once('dialog', (dialog) => void dialog.accept());
    await replies.getByRole('button', { name: 'Delete your comment' }).click();
    await expect.poll(() => comments.getByText('Replying to myself').count()).toBe(0);
  });

  it("lets the course's instructor delete the learner's comment (moderation)", async () => {
    const other = await h.browser.newContext({ baseURL: BASE_URL });
    const page = await other.newPage();
    try {
      await page.goto(`/login?next=${encodeURIComponent(lessonUrls[3] ?? '/')}`);
      await page.getByLabel('Email').fill('instructor@learnflow.dev');
      await page.getByLabel('Password').fill('teach-demo-pass');
      await page.getByRole('button', { name: 'Log in' }).click();
      await lessonHeading('Exercise: FizzBuzz', page);
      await page.getByText('You are viewing this lesson as course staff.').waitFor();
      const comments = page.getByRole('list', { name: 'Comments' });
      await comments.getByText('(answered: yes)').waitFor();
      // Staff may delete it, not edit it.
      expect(await comments.getByRole('button', { name: 'Edit your comment' }).count()).toBe(0);
      page.once('dialog', (dialog) => void dialog.accept());
      await comments.getByRole('button', { name: `Delete ${name}'s comment` }).click();
      await expect.poll(() => page.getByText('(answered: yes)').count()).toBe(0);
      await check('lesson as staff', page);
    } finally {
      await other.close();
    }
  });

  it('shows progress live: a lesson completed elsewhere reaches the progress page', async () => {
    const { page } = h;
    await go(page, `/learn/courses/${courseId}`);
    await page.getByRole('heading', { level: 1, name: `Progress: ${COURSE}` }).waitFor();
    await page.getByText(/3 of 4 lessons done/).waitFor();
    await page.getByText(/updates live/).waitFor();
    await both('progress');
    // Another device: a session of its own completes the last lesson through the API.
    const login = await api('/v1/sessions', { method: 'POST', body: JSON.stringify({ email, password }) });
    expect(login.status).toBe(200);
    const { accessToken } = (await login.json()) as { accessToken: string };
    const lastLesson = lessonUrls[3]?.split('/')[4] ?? '';
    const done = await api(`/v1/courses/${courseId}/lessons/${lastLesson}:complete`, { method: 'POST', body: '{}', token: accessToken });
    expect(done.status).toBe(200);
    // No reload: the stream brings it.
    await page.getByText(/4 of 4 lessons done/).waitFor();
    const link = page.getByRole('link', { name: 'View your certificate' });
    await link.waitFor();
    certificateUrl = (await link.getAttribute('href')) ?? '';
    expect(certificateUrl).toMatch(/^\/certificates\//);
  });

  it('lists the completed course with its certificate on the dashboard', async () => {
    const { page } = h;
    await go(page, '/learn');
    await page.getByRole('link', { name: `Certificate for ${COURSE}` }).waitFor();
    expect(await page.getByRole('progressbar', { name: `Progress in ${COURSE}` }).getAttribute('aria-valuenow')).toBe('100');
  });

  it('shows the public certificate with the learner and the course', async () => {
    const { page } = h;
    // A fresh, anonymous browser: the certificate is public.
    const other = await h.browser.newContext({ baseURL: BASE_URL });
    const anon = await other.newPage();
    await anon.goto(certificateUrl);
    await anon.getByRole('heading', { level: 1, name: 'Certificate of completion' }).waitFor();
    expect(await anon.getByTestId('learner-name').textContent()).toBe(name);
    expect(await anon.getByTestId('course-title').textContent()).toBe(COURSE);
    await check('certificate (anonymous)', anon);
    // The course page, anonymously: an invitation to log in instead of the Enrol button.
    await anon.goto(courseUrl);
    await anon.getByRole('link', { name: 'Log in to enrol' }).waitFor();
    expect(await anon.getByRole('button', { name: 'Enrol' }).count()).toBe(0);
    await check('course (anonymous)', anon);
    await other.close();
    await go(page, certificateUrl);
    await page.getByTestId('learner-name').waitFor();
    await both('certificate');
    await page.emulateMedia({ media: 'print' });
    expect(await page.locator('header').isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: 'Print' }).isVisible()).toBe(false);
    await page.emulateMedia({ media: 'screen' });
  });

  it('shows the server field error next to the avatar URL, then saves the profile', async () => {
    const { page } = h;
    await go(page, '/profile');
    await page.getByRole('heading', { level: 1, name: 'Profile' }).waitFor();
    const avatar = page.getByLabel('Avatar URL');
    await avatar.fill('http://example.com/me.png');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await expect.poll(() => avatar.getAttribute('aria-invalid')).toBe('true');
    const described = await avatar.getAttribute('aria-describedby');
    expect(await page.locator(`[id="${described}"]`).textContent()).toBeTruthy();
    await both('profile-errors');
    await avatar.fill('');
    await page.getByLabel('Bio').fill('Learning Python in the evenings.');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByText('Profile saved.').waitFor();
    expect(await avatar.getAttribute('aria-invalid')).toBeNull();
  });

  it('changes the password and stays signed in', async () => {
    const { page } = h;
    const next = `${password} renewed`;
    await page.getByLabel('Current password').fill(password);
    await page.getByLabel('New password').fill(next);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByText(/Password changed/).waitFor();
    password = next;
    // Still signed in, on the new in-memory token…
    await go(page, '/learn');
    await page.getByRole('heading', { name: 'My learning' }).waitFor();
    await page.getByRole('link', { name: `Certificate for ${COURSE}` }).waitFor();
    // …and across a reload, on the new refresh cookie.
    await page.reload();
    await page.getByRole('heading', { name: 'My learning' }).waitFor();
    await page.getByRole('link', { name: `Certificate for ${COURSE}` }).waitFor();
    const old = await api('/v1/sessions', { method: 'POST', body: JSON.stringify({ email, password: 'correct horse battery staple 42' }) });
    expect(old.status).toBe(401);
  });

  it('fits a 360 px screen (course and lesson)', async () => {
    const { page } = h;
    await page.setViewportSize({ width: 360, height: 740 });
    for (const [path, shotName] of [
      [courseUrl, 'course-360'],
      [lessonUrls[2] ?? '', 'lesson-quiz-360'],
      ['/learn', 'dashboard-360'],
    ] as const) {
      await go(page, path);
      await page.getByRole('heading', { level: 1 }).first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, path).toBeLessThanOrEqual(0);
      await shot(page, shotName);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(h.problems).toEqual([]);
  });
});
