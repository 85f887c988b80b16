/**
 * The instructor's journey: a new user promoted by the demo admin (API) logs in → a field
 * error next to its field → creates a course → adds one lesson of each type → reorders with
 * the keyboard → publishes → a learner enrolled through the API appears in the roster with
 * progress → unpublishing is refused with the server's reason. Then the session: an expired
 * access token is refreshed under the user, and after logout a reload lands on login.
 * axe on every screen, screenshots under web/test-results/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ADMIN, PASSWORD, eventually, login, loginInBrowser, register, request, uniqueEmail } from './api';
import { go, open, seriousViolations, shot, type Harness } from './harness';

let h: Harness;
const instructorEmail = uniqueEmail('e2e-teacher');
const learnerEmail = uniqueEmail('e2e-learner');
const courseTitle = `E2E Course ${Date.now()}`;
let courseId = '';

async function noSeriousViolations(name: string) {
  const violations = await seriousViolations(h.page);
  expect(violations, `${name}: ${JSON.stringify(violations)}`).toEqual([]);
}

async function lessonTitles(): Promise<string[]> {
  const titles = h.page.getByRole('list', { name: 'Lessons in order' }).locator('[data-lesson-title]');
  return (await titles.allTextContents()).map((t) => t.trim());
}

async function addLesson(type: string, title: string, fill: () => Promise<void>) {
  const { page } = h;
  await page.getByRole('button', { name: 'Add a lesson' }).click();
  await page.getByLabel('Lesson title').fill(title);
  await page.getByLabel('Type').selectOption({ label: type });
  await fill();
  await page.getByRole('button', { name: 'Add lesson' }).click();
  await page.getByRole('status').filter({ hasText: `Lesson “${title}” saved.` }).waitFor();
  await page.getByRole('list', { name: 'Lessons in order' }).getByText(title, { exact: true }).waitFor();
}

describe('instructor studio', () => {
  beforeAll(async () => {
    h = await open();
    const instructorId = await register(instructorEmail, 'E2E Teacher');
    await register(learnerEmail, 'E2E Learner');
    const admin = await login(DEMO_ADMIN.email, DEMO_ADMIN.password);
    await request('POST', `/v1/users/${instructorId}:setRole`, { role: 'ROLE_INSTRUCTOR' }, admin);
  });
  afterAll(async () => {
    await h?.browser.close();
  });

  it('logs in as the new instructor and sees an empty studio', async () => {
    const { page } = h;
    await loginInBrowser(page, instructorEmail, PASSWORD, '/studio');
    await page.getByRole('heading', { name: 'My courses', level: 1 }).waitFor();
    await page.getByText('No course here yet.').waitFor();
    await noSeriousViolations('studio (empty)');
  });

  it('shows a too-long title error next to the title field', async () => {
    const { page } = h;
    await page.getByRole('button', { name: 'New course' }).click();
    const title = page.getByLabel('Title', { exact: true });
    await title.fill('x'.repeat(130));
    await page.getByRole('button', { name: 'Create draft' }).click();
    await expect.poll(() => title.getAttribute('aria-invalid')).toBe('true');
    const described = await title.getAttribute('aria-describedby');
    expect(described).toBeTruthy();
    expect(await page.locator(`[id="${described}"]`).textContent()).toMatch(/\S/);
    await shot(page, 'studio-field-error');
    await noSeriousViolations('new course with errors');
  });

  it('creates a draft course and opens its editor', async () => {
    const { page } = h;
    await page.getByLabel('Title', { exact: true }).fill(courseTitle);
    await page.getByLabel('Summary').fill('Made by the end-to-end test.');
    await page.getByRole('button', { name: 'Create draft' }).click();
    await page.waitForURL(/\/studio\/courses\/[0-9a-f-]{36}$/);
    courseId = page.url().split('/').pop() ?? '';
    await page.getByRole('heading', { name: courseTitle, level: 1 }).waitFor();
    await page.getByText('Draft', { exact: true }).first().waitFor();
  });

  it('edits the details: only the changed fields are sent, and read back', async () => {
    const { page } = h;
    const patches: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'PATCH' && r.url().includes(`/v1/courses/${courseId}?`)) patches.push(new URL(r.url()).searchParams.get('updateMask') ?? '');
    });
    await page.getByLabel('Tags (comma separated)').fill('E2E, testing');
    await page.getByLabel('Level').selectOption('COURSE_LEVEL_BEGINNER');
    await page.getByLabel('Capacity (0 = unlimited)').fill('30');
    await page.getByLabel('Enrollment closes').fill('2031-06-30T18:00');
    await page.getByRole('button', { name: 'Save details' }).click();
    await page.getByRole('status').filter({ hasText: 'Details saved.' }).waitFor();
    expect(patches).toEqual(['tags,level,capacity,enrollmentCloseTime']);
    await page.reload();
    await page.getByLabel('Tags (comma separated)').waitFor();
    expect(await page.getByLabel('Tags (comma separated)').inputValue()).toBe('e2e, testing');
    expect(await page.getByLabel('Capacity (0 = unlimited)').inputValue()).toBe('30');
    expect(await page.getByLabel('Enrollment closes').inputValue()).toBe('2031-06-30T18:00');
  });

  it('adds one lesson of each type', async () => {
    const { page } = h;
    await addLesson('Article', 'Reading', async () => {
      await page.getByLabel('Article (Markdown)').fill('# Welcome\n\nSome **bold** text.');
      await page.getByRole('button', { name: 'Preview' }).click();
      await page.getByRole('region', { name: 'Article preview' }).getByRole('heading', { name: 'Welcome' }).waitFor();
      await shot(page, 'studio-article-preview');
      await noSeriousViolations('article preview');
    });
    await addLesson('Video', 'Watching', async () => {
      await page.getByLabel('Video URL (https)').fill('https://videos.example.com/intro.mp4');
      await page.getByLabel('Duration (seconds)').fill('120');
    });
    await addLesson('Quiz', 'Checking', async () => {
      await page.getByLabel('Pass mark (%)').fill('50');
      await page.getByLabel('Question 1 text').fill('What is 2 + 2?');
      await page.getByLabel('Question 1, choice 1').fill('3');
      await page.getByLabel('Question 1, choice 2').fill('4');
      await page.getByRole('button', { name: 'Add choice to question 1' }).click();
      await page.getByLabel('Question 1, choice 3').fill('5');
      await page.getByLabel('Correct: choice 2 of question 1').check();
      await shot(page, 'studio-quiz-editor');
      await noSeriousViolations('quiz editor');
    });
    await addLesson('Code exercise', 'Coding', async () => {
      await page.getByLabel('Language').fill('python');
      await page.getByLabel('Exercise prompt (Markdown)').fill('Write `add(a, b)`.');
      await page.getByLabel('Starter code').fill('def add(a, b):\n    pass\n');
    });
    expect(await lessonTitles()).toEqual(['Reading', 'Watching', 'Checking', 'Coding']);
  });

  it('edits a lesson: the quiz keeps its answers and changes its pass mark', async () => {
    const { page } = h;
    await page.getByRole('button', { name: 'Edit “Checking”' }).click();
    await page.getByLabel('Pass mark (%)').fill('60');
    expect(await page.getByLabel('Correct: choice 2 of question 1').isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Save lesson' }).click();
    await page.getByRole('status').filter({ hasText: 'Lesson “Checking” saved.' }).waitFor();
    const lessonId = await (async () => {
      const data = await request<{ lessons: { id: string; title: string }[] }>('GET', `/v1/courses/${courseId}`, undefined, await login(instructorEmail));
      return data.lessons.find((l) => l.title === 'Checking')!.id;
    })();
    const token = await login(instructorEmail);
    const lesson = await request<{ lesson: { quiz: { passThresholdPercent: number; questions: { correctChoiceIndexes: number[] }[] } } }>(
      'GET', `/v1/courses/${courseId}/lessons/${lessonId}`, undefined, token,
    ); // prettier-ignore
    expect(lesson.lesson.quiz.passThresholdPercent).toBe(60);
    expect(lesson.lesson.quiz.questions[0]!.correctChoiceIndexes).toEqual([1]);
  });

  it('reorders lessons with the keyboard', async () => {
    const { page } = h;
    const up = page.getByRole('button', { name: 'Move “Coding” up' });
    await up.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: '“Coding” moved to position 3.' }).waitFor();
    // Focus stays on the moved lesson's button, so pressing again keeps moving it.
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('aria-label'))).toBe('Move “Coding” up');
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: '“Coding” moved to position 2.' }).waitFor();
    expect(await lessonTitles()).toEqual(['Reading', 'Coding', 'Watching', 'Checking']);
    // The server agrees (a reload reads it back).
    await page.reload();
    await page.getByRole('list', { name: 'Lessons in order' }).waitFor();
    expect(await lessonTitles()).toEqual(['Reading', 'Coding', 'Watching', 'Checking']);
    await shot(page, 'studio-course-editor');
    await noSeriousViolations('course editor');
    await page.setViewportSize({ width: 360, height: 740 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    await shot(page, 'studio-course-editor-360');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('publishes after a confirmation', async () => {
    const { page } = h;
    await page.getByRole('button', { name: 'Publish', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Publish this course?' });
    await dialog.waitFor();
    await noSeriousViolations('publish dialog');
    await dialog.getByRole('button', { name: 'Publish', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Published.' }).waitFor();
    await page.getByRole('button', { name: 'Unpublish' }).waitFor();
  });

  it('shows an enrolled learner in the roster with progress, sortable', async () => {
    const { page } = h;
    const learner = await login(learnerEmail);
    await request('POST', `/v1/courses/${courseId}/enrollments`, {}, learner);
    const detail = await request<{ lessons: { id: string; title: string }[] }>('GET', `/v1/courses/${courseId}`, undefined, learner);
    await request('POST', `/v1/courses/${courseId}/lessons/${detail.lessons[0]!.id}:complete`, {}, learner);
    // The quiz, answered right: passing completes it and records a best score.
    const quizId = detail.lessons.find((l) => l.title === 'Checking')!.id;
    const quiz = await request<{ lesson: { quiz: { questions: { id: string }[] } } }>('GET', `/v1/courses/${courseId}/lessons/${quizId}`, undefined, learner);
    const attempt = await request<{ score: number; passed: boolean }>(
      'POST', `/v1/courses/${courseId}/lessons/${quizId}/quizAttempts`,
      { answers: [{ questionId: quiz.lesson.quiz.questions[0]!.id, choiceIndexes: [1] }] }, learner,
    ); // prettier-ignore
    expect(attempt).toMatchObject({ score: 100, passed: true });

    await go(page, `/studio/courses/${courseId}/roster`);
    await page.getByRole('heading', { name: 'Roster', level: 1 }).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'E2E Learner' });
    await eventually(async () => {
      if ((await row.count()) > 0 && (await row.textContent())?.includes('50%')) return true;
      await page.reload();
      await page.getByRole('heading', { name: 'Roster', level: 1 }).waitFor();
      return false;
    }, 'the learner in the roster with 50%');
    expect(await row.textContent()).toContain('Active');
    expect(await row.textContent()).toContain('Checking: 100%');
    await page.getByRole('button', { name: /Progress/ }).click();
    await page.waitForURL(/sort=percent_complete/);
    expect(await page.getByRole('columnheader', { name: /Progress/ }).getAttribute('aria-sort')).toBe('descending');
    await row.waitFor();
    await shot(page, 'studio-roster');
    await noSeriousViolations('roster');
    // And in the dark theme.
    await page.getByLabel('Theme').selectOption('dark');
    await noSeriousViolations('roster (dark)');
    await shot(page, 'studio-roster-dark');
    await page.getByLabel('Theme').selectOption('light');
    await page.setViewportSize({ width: 360, height: 740 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(page, 'studio-roster-360');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('refuses to unpublish with someone enrolled, with the server\'s reason', async () => {
    const { page } = h;
    await go(page, `/studio/courses/${courseId}`);
    await page.getByRole('button', { name: 'Unpublish' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Unpublish' }).click();
    const alert = page.getByRole('alert').filter({ hasText: 'Not allowed now' });
    await alert.waitFor();
    expect((await alert.textContent())?.length).toBeGreaterThan('Not allowed now: '.length);
    await page.getByText('Published', { exact: true }).first().waitFor();
  });

  it('lists the course among its published courses', async () => {
    const { page } = h;
    await go(page, '/studio?state=COURSE_STATE_PUBLISHED');
    await page.getByRole('link', { name: courseTitle, exact: true }).waitFor();
    await shot(page, 'studio-courses');
    await noSeriousViolations('studio (courses)');
    await go(page, '/studio?state=COURSE_STATE_DRAFT');
    await page.getByText('No course here yet.').waitFor();
  });

  it('archives, restores and deletes a draft, each after a confirmation', async () => {
    const { page } = h;
    const token = await login(instructorEmail);
    const created = await request<{ course: { id: string } }>('POST', '/v1/courses', { course: { title: `Lifecycle ${Date.now()}` } }, token);
    const id = created.course.id;
    await request('POST', `/v1/courses/${id}/lessons`, { lesson: { title: 'Only', article: { markdown: 'x' } } }, token);

    // Written by another client: the browser's reads catch up shortly (no shared token).
    await go(page, `/studio/courses/${id}`);
    const publish = page.getByRole('button', { name: 'Publish', exact: true });
    await eventually(async () => {
      if ((await publish.count()) > 0 && (await page.getByText('Only', { exact: true }).count()) > 0) return true;
      await page.reload();
      await page.waitForLoadState('networkidle');
      return false;
    }, 'the new course with its lesson in the editor');
    await publish.click();
    await page.getByRole('dialog').getByRole('button', { name: 'Publish' }).click();
    await page.getByRole('button', { name: 'Archive' }).click();
    const dialog = page.getByRole('dialog', { name: 'Archive this course?' });
    await dialog.getByRole('button', { name: 'Archive' }).click();
    await page.getByRole('status').filter({ hasText: 'Archived.' }).waitFor();
    // Frozen: no lesson changes, no details form.
    expect(await page.getByRole('button', { name: 'Edit “Only”' }).isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Save details' }).count()).toBe(0);

    await page.getByRole('button', { name: 'Restore' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Restore' }).click();
    await page.getByRole('status').filter({ hasText: 'Restored as a draft.' }).waitFor();

    await page.getByRole('button', { name: 'Delete draft' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete draft' }).click();
    await page.waitForURL(/\/studio$/);
    await page.getByRole('heading', { name: 'My courses', level: 1 }).waitFor();
    // Gone for good (this client did not write it: its read catches up shortly).
    await eventually(async () => {
      const gone = await fetch(new URL(`/v1/courses/${id}`, page.url()), { headers: { Authorization: `Bearer ${token}` } });
      return gone.status === 404;
    }, 'the deleted course to be gone');
    expect(await page.getByRole('link', { name: /^Lifecycle / }).count()).toBe(0);
  });

  it('keeps working when the access token has expired (refreshed under the user)', async () => {
    const { page } = h;
    let refused = 0;
    let refreshed = 0;
    page.on('response', (response) => {
      if (response.url().includes('/enrollments') && response.status() === 401) refused += 1;
      if (response.url().includes('/v1/sessions:refresh') && response.ok()) refreshed += 1;
    });
    // The next roster request carries an expired (invalid) token, as one past its TTL would.
    let spoiled = false;
    await page.route('**/v1/courses/*/enrollments*', async (route) => {
      if (spoiled) return route.continue();
      spoiled = true;
      const headers = { ...route.request().headers(), authorization: 'Bearer expired.token.value' };
      return route.continue({ headers });
    });
    await go(page, `/studio/courses/${courseId}/roster`);
    await page.getByRole('row').filter({ hasText: 'E2E Learner' }).waitFor();
    expect(spoiled).toBe(true);
    expect(refused).toBe(1);
    expect(refreshed).toBeGreaterThanOrEqual(1);
    expect(page.url()).toContain('/roster');
    await page.unroute('**/v1/courses/*/enrollments*');
  });

  it('after logout, a reload of a studio page lands on login', async () => {
    const { page } = h;
    await page.locator('summary').click();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL('**/login');
    await page.goto(`/studio/courses/${courseId}`);
    await page.waitForURL(/\/login\?next=/);
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    expect(h.problems).toEqual([]);
  });
});
