/** Pure helpers for the learner's progress: where to resume, what is done. */
import type { CourseProgress, LessonSummary } from '../../api';

export const CONTENT_LABELS: Record<string, string> = {
  article: 'Article',
  video: 'Video',
  quiz: 'Quiz',
  code_exercise: 'Code exercise',
};

/**
 * The lesson to open on "resume": the first lesson not completed yet (the server's
 * `nextLessonId`, else computed from the outline), then the last one touched when all are
 * done, then the first lesson. Null for a course without lessons.
 */
export function resumeLessonId(
  progress: Pick<CourseProgress, 'nextLessonId' | 'lastLessonId' | 'completedLessonIds'> | null | undefined,
  lessons: readonly Pick<LessonSummary, 'id'>[] = [],
): string | null {
  if (progress?.nextLessonId) return progress.nextLessonId;
  const done = new Set(progress?.completedLessonIds ?? []);
  const todo = lessons.find((l) => l.id && !done.has(l.id));
  if (todo?.id) return todo.id;
  if (progress?.lastLessonId) return progress.lastLessonId;
  return lessons[0]?.id ?? null;
}

/** 0..100: the server's figure (always present in its answers), clamped. */
export function percentOf(progress: Pick<CourseProgress, 'percentComplete'> | null | undefined): number {
  if (!progress) return 0;
  return clamp(progress.percentComplete);
}

export function isComplete(progress: Pick<CourseProgress, 'state'> | null | undefined): boolean {
  return progress?.state === 'ENROLLMENT_STATE_COMPLETED';
}

export function isEnrolled(progress: Pick<CourseProgress, 'state'> | null | undefined): boolean {
  return progress?.state === 'ENROLLMENT_STATE_ACTIVE' || progress?.state === 'ENROLLMENT_STATE_COMPLETED';
}

/** The newer of two snapshots of the same course's progress (SSE and reads may cross). */
export function newerProgress(a: CourseProgress | null, b: CourseProgress): CourseProgress {
  if (!a) return b;
  const ta = Date.parse(a.lastActivityTime ?? '') || 0;
  const tb = Date.parse(b.lastActivityTime ?? '') || 0;
  if (tb !== ta) return tb > ta ? b : a;
  return (b.completedLessonIds?.length ?? 0) >= (a.completedLessonIds?.length ?? 0) ? b : a;
}

/**
 * Why a learner cannot enrol right now, or null when the button may be shown. A closed window
 * or a full course is decided by the server too; this only avoids offering a doomed click.
 */
export function enrolBlocker(
  course: { state?: string; capacity?: number; enrollmentCount?: number; enrollmentOpenTime?: string; enrollmentCloseTime?: string },
  now: number = Date.now(),
): 'not-published' | 'full' | 'not-open' | 'closed' | null {
  if (course.state && course.state !== 'COURSE_STATE_PUBLISHED') return 'not-published';
  const open = Date.parse(course.enrollmentOpenTime ?? '');
  const close = Date.parse(course.enrollmentCloseTime ?? '');
  if (Number.isFinite(open) && now < open) return 'not-open';
  if (Number.isFinite(close) && now >= close) return 'closed';
  if (course.capacity && (course.enrollmentCount ?? 0) >= course.capacity) return 'full';
  return null;
}

function clamp(n: number): number {
  return Math.max(0, Math.min(100, Math.round(n)));
}

/**
 * The fields whose value changed, as an update mask's paths: the JSON (camelCase) names, which
 * the gateway's FieldMask parsing turns into the proto's paths.
 */
export function changedMask<K extends string>(fields: readonly K[], before: Record<K, string>, after: Record<K, string>): K[] {
  return fields.filter((f) => (before[f] ?? '') !== (after[f] ?? ''));
}
