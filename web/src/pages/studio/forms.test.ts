import { describe, expect, it } from 'vitest';
import type { Course, Lesson, LessonSummary } from '../../api';
import {
  courseDraft,
  courseFromDraft,
  courseMask,
  fromLocalInput,
  lessonDraft,
  lessonPatch,
  lessonToCreate,
  moveLesson,
  parseTags,
  removeChoice,
  toLocalInput,
  toggleCorrect,
} from './forms';

const course: Course = {
  id: 'c1',
  title: 'Intro',
  slug: 'intro',
  summary: 'About',
  tags: ['web'],
  level: 'COURSE_LEVEL_BEGINNER',
  state: 'COURSE_STATE_DRAFT',
  capacity: 0,
  ownerId: 'u1',
  instructorName: 'Ivan',
  lessonCount: 0,
  enrollmentCount: 0,
};

describe('course form', () => {
  it('parses tags: trimmed, lower-cased, deduplicated, empty ones dropped', () => {
    expect(parseTags(' Web, python ,, web,')).toEqual(['web', 'python']);
  });

  it('round-trips a datetime-local value through ISO', () => {
    const iso = fromLocalInput('2030-05-01T09:30');
    expect(iso).toMatch(/Z$/);
    expect(toLocalInput(iso)).toBe('2030-05-01T09:30');
    expect(fromLocalInput('')).toBeUndefined();
  });

  it('masks only the changed fields', () => {
    const draft = { ...courseDraft(course), title: 'Intro 2', tags: 'web, css' };
    expect(courseMask(course, draft)).toEqual(['title', 'tags']);
    expect(courseMask(course, courseDraft(course))).toEqual([]);
  });

  it('clears a time by leaving it out under its mask path', () => {
    const saved = { ...course, enrollmentCloseTime: '2030-01-01T00:00:00Z' };
    const draft = { ...courseDraft(saved), enrollmentCloseTime: '' };
    expect(courseMask(saved, draft)).toEqual(['enrollmentCloseTime']);
    expect(courseFromDraft(draft)).not.toHaveProperty('enrollmentCloseTime');
  });

  it('turns capacity into a number, empty as unlimited', () => {
    expect(courseFromDraft({ ...courseDraft(), capacity: '25' }).capacity).toBe(25);
    expect(courseFromDraft({ ...courseDraft(), capacity: '' }).capacity).toBe(0);
  });
});

describe('lesson form', () => {
  it('creates each content type with exactly one content field', () => {
    const article = lessonToCreate({ ...lessonDraft('article'), title: ' A ', markdown: '# Hi' });
    expect(article).toEqual({ title: 'A', position: 0, article: { markdown: '# Hi' } });
    const video = lessonToCreate({ ...lessonDraft('video'), title: 'V', videoUrl: 'https://x/v.mp4', durationSeconds: '90' });
    expect(video.video).toEqual({ url: 'https://x/v.mp4', durationSeconds: 90 });
    expect(video.article).toBeUndefined();
    const code = lessonToCreate({ ...lessonDraft('codeExercise'), title: 'C', prompt: 'Do', starterCode: 'pass' });
    expect(code.codeExercise).toEqual({ language: 'python', prompt: 'Do', starterCode: 'pass' });
  });

  it('maps a quiz: sorted correct indexes, new questions without id, pass mark', () => {
    const draft = lessonDraft('quiz');
    draft.title = 'Q';
    draft.passThresholdPercent = '80';
    draft.questions = [{ id: '', prompt: '2+2?', choices: ['3', '4', 'four'], correct: [2, 1] }];
    expect(lessonToCreate(draft).quiz).toEqual({
      passThresholdPercent: 80,
      maxAttempts: 0,
      questions: [{ prompt: '2+2?', choices: ['3', '4', 'four'], correctChoiceIndexes: [1, 2] }],
    });
  });

  it('patches only what changed; content goes whole under "content"', () => {
    const saved: Lesson = {
      id: 'l1',
      courseId: 'c1',
      courseTitle: 'Intro',
      previousLessonId: '',
      nextLessonId: '',
      title: 'Quiz',
      position: 2,
      quiz: { passThresholdPercent: 70, maxAttempts: 0, questions: [{ id: 'q1', prompt: 'P', choices: ['a', 'b'], correctChoiceIndexes: [0] }] },
    };
    const same = lessonDraft('article', saved);
    expect(same.kind).toBe('quiz');
    expect(lessonPatch(saved, same)).toEqual({ lesson: {}, mask: [] });

    const renamed = { ...same, title: 'Quiz 1' };
    expect(lessonPatch(saved, renamed)).toEqual({ lesson: { title: 'Quiz 1' }, mask: ['title'] });

    const changed = { ...same, questions: [toggleCorrect(same.questions[0]!, 1)] };
    const patch = lessonPatch(saved, changed);
    expect(patch.mask).toEqual(['content']);
    expect(patch.lesson.quiz?.questions?.[0]).toEqual({ id: 'q1', prompt: 'P', choices: ['a', 'b'], correctChoiceIndexes: [0, 1] });
  });

  it('removes a choice and shifts the correct answers after it', () => {
    const q = { id: '', prompt: '', choices: ['a', 'b', 'c', 'd'], correct: [1, 3] };
    expect(removeChoice(q, 1)).toEqual({ id: '', prompt: '', choices: ['a', 'c', 'd'], correct: [2] });
    expect(toggleCorrect(q, 1).correct).toEqual([3]);
  });
});

describe('reordering', () => {
  const lessons: LessonSummary[] = [
    { id: 'a', title: 'A', position: 1, contentType: 'article' },
    { id: 'b', title: 'B', position: 2, contentType: 'video' },
    { id: 'c', title: 'C', position: 3, contentType: 'quiz' },
  ];

  it('moves up and down, renumbering positions', () => {
    const down = moveLesson(lessons, 0, 1);
    expect(down?.position).toBe(2);
    expect(down?.lessons.map((l) => [l.id, l.position])).toEqual([
      ['b', 1],
      ['a', 2],
      ['c', 3],
    ]);
    const up = moveLesson(lessons, 2, -1);
    expect(up?.position).toBe(2);
    expect(up?.lessons.map((l) => l.id)).toEqual(['a', 'c', 'b']);
  });

  it('refuses to move past either end', () => {
    expect(moveLesson(lessons, 0, -1)).toBeNull();
    expect(moveLesson(lessons, 2, 1)).toBeNull();
    expect(moveLesson([], 0, 1)).toBeNull();
  });
});
