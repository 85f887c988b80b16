import { describe, expect, it } from 'vitest';
import { changedMask, enrolBlocker, newerProgress, percentOf, resumeLessonId } from './progress';
import { attemptsLeft, passThreshold, toAnswers, toggleChoice, unanswered } from './quiz';
import { backoffMs } from '../../api/streams';
import type { CourseProgress, QuizQuestion } from '../../api';

/** A progress snapshot as the server answers it, with the fields a test cares about. */
function progress(fields: Partial<CourseProgress>): CourseProgress {
  return {
    courseId: 'c1',
    courseTitle: 'Course',
    state: 'ENROLLMENT_STATE_ACTIVE',
    completedLessonIds: [],
    lessonCount: 0,
    percentComplete: 0,
    quizBestScores: {},
    lastLessonId: '',
    nextLessonId: '',
    certificateId: '',
    ...fields,
  };
}

const lessons = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];

describe('resumeLessonId', () => {
  it("prefers the server's next lesson", () => {
    expect(resumeLessonId(progress({ nextLessonId: 'c', lastLessonId: 'a', completedLessonIds: ['a'] }), lessons)).toBe('c');
  });
  it('falls back to the first lesson not completed in outline order', () => {
    expect(resumeLessonId(progress({ completedLessonIds: ['a', 'c'] }), lessons)).toBe('b');
  });
  it('goes to the last lesson touched when everything is done', () => {
    expect(resumeLessonId(progress({ completedLessonIds: ['a', 'b', 'c'], lastLessonId: 'b' }), lessons)).toBe('b');
  });
  it('starts at the first lesson without progress, and is null without lessons', () => {
    expect(resumeLessonId(null, lessons)).toBe('a');
    expect(resumeLessonId(null, [])).toBeNull();
  });
});

describe('percentOf', () => {
  it("uses the server's figure, clamped", () => {
    expect(percentOf(progress({ percentComplete: 50 }))).toBe(50);
    expect(percentOf(progress({ percentComplete: 140 }))).toBe(100);
  });
  it('is 0 without progress', () => {
    expect(percentOf(progress({ lessonCount: 0 }))).toBe(0);
    expect(percentOf(null)).toBe(0);
  });
});

describe('newerProgress', () => {
  it('keeps the snapshot with the later activity', () => {
    const old = progress({ lastActivityTime: '2026-01-01T00:00:00Z', completedLessonIds: ['a', 'b'] });
    const fresh = progress({ lastActivityTime: '2026-01-02T00:00:00Z', completedLessonIds: ['a'] });
    expect(newerProgress(old, fresh)).toBe(fresh);
    expect(newerProgress(fresh, old)).toBe(fresh);
    expect(newerProgress(null, old)).toBe(old);
  });
});

describe('enrolBlocker', () => {
  const now = Date.parse('2026-06-01T00:00:00Z');
  it('allows a published, open course with seats', () => {
    expect(enrolBlocker({ state: 'COURSE_STATE_PUBLISHED', capacity: 2, enrollmentCount: 1 }, now)).toBeNull();
    expect(enrolBlocker({ state: 'COURSE_STATE_PUBLISHED', capacity: 0, enrollmentCount: 900 }, now)).toBeNull();
  });
  it('names the reason otherwise', () => {
    expect(enrolBlocker({ state: 'COURSE_STATE_DRAFT' }, now)).toBe('not-published');
    expect(enrolBlocker({ state: 'COURSE_STATE_PUBLISHED', capacity: 2, enrollmentCount: 2 }, now)).toBe('full');
    expect(enrolBlocker({ state: 'COURSE_STATE_PUBLISHED', enrollmentCloseTime: '2026-05-01T00:00:00Z' }, now)).toBe('closed');
    expect(enrolBlocker({ state: 'COURSE_STATE_PUBLISHED', enrollmentOpenTime: '2026-07-01T00:00:00Z' }, now)).toBe('not-open');
  });
});

describe('quiz state', () => {
  const questions: QuizQuestion[] = [
    { id: 'q1', prompt: 'one', choices: ['x', 'y'], correctChoiceIndexes: [] },
    { id: 'q2', prompt: 'two', choices: ['x', 'y', 'z'], correctChoiceIndexes: [] },
  ];
  it('toggles choices immutably and sorted', () => {
    const a = toggleChoice({}, 'q2', 2);
    const b = toggleChoice(a, 'q2', 0);
    expect(a).toEqual({ q2: [2] });
    expect(b).toEqual({ q2: [0, 2] });
    expect(toggleChoice(b, 'q2', 2)).toEqual({ q2: [0] });
  });
  it('answers every question in order and lists the unanswered', () => {
    const choices = { q2: [1] };
    expect(toAnswers(questions, choices)).toEqual([
      { questionId: 'q1', choiceIndexes: [] },
      { questionId: 'q2', choiceIndexes: [1] },
    ]);
    expect(unanswered(questions, choices).map((q) => q.id)).toEqual(['q1']);
  });
  it('counts attempts left (null: unlimited) and defaults the threshold to 70', () => {
    expect(attemptsLeft(0, 5)).toBeNull();
    expect(attemptsLeft(3, 1)).toBe(2);
    expect(attemptsLeft(3, 7)).toBe(0);
    expect(passThreshold(undefined)).toBe(70);
    expect(passThreshold(80)).toBe(80);
  });
});

describe('stream reconnection', () => {
  it('backs off exponentially up to 30 s', () => {
    expect([0, 1, 2, 5, 10].map(backoffMs)).toEqual([1000, 2000, 4000, 30000, 30000]);
  });
});

describe('changedMask', () => {
  it('names only the fields that changed', () => {
    const fields = ['displayName', 'bio', 'avatarUrl'] as const;
    const before = { displayName: 'A', bio: '', avatarUrl: '' };
    expect(changedMask(fields, before, { ...before })).toEqual([]);
    expect(changedMask(fields, before, { ...before, bio: 'x', avatarUrl: 'https://a' })).toEqual(['bio', 'avatarUrl']);
  });
});
