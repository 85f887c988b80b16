/** Pieces shared by the learner's pages: data hooks, the progress bar, small formatters. */
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiError, asApiError, call, session, type CourseDetail, type CourseProgress } from '../../api';
import { watchStream } from '../../api/streams';
import { newerProgress } from './progress';

export const LEVEL_NAMES: Record<string, string> = {
  COURSE_LEVEL_BEGINNER: 'Beginner',
  COURSE_LEVEL_INTERMEDIATE: 'Intermediate',
  COURSE_LEVEL_ADVANCED: 'Advanced',
};

export const linkClass = 'font-medium text-brand-600 underline-offset-2 hover:underline dark:text-brand-50';
export const secondaryButton =
  'inline-flex items-center justify-center rounded-md border border-slate-300 px-4 py-2 font-medium hover:bg-slate-100 disabled:opacity-60 dark:border-slate-600 dark:hover:bg-slate-800';
export const control =
  'rounded-md border border-slate-300 bg-white px-3 py-2 text-slate-900 dark:border-slate-600 dark:bg-slate-900 dark:text-slate-100';

// One definition, in the service layer; re-exported for the pages that import it from here.
export { asApiError } from '../../api';

export function formatDate(iso: string | undefined): string {
  const t = Date.parse(iso ?? '');
  return Number.isFinite(t) ? new Date(t).toLocaleDateString(undefined, { dateStyle: 'long' }) : '';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A course with its outline, by id or by slug (a UUID is an id; slugs never look like one). */
export function useCourse(idOrSlug: string | undefined) {
  const [course, setCourse] = useState<CourseDetail | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    if (!idOrSlug) return;
    const abort = new AbortController();
    setError(null);
    const pending = UUID.test(idOrSlug)
      ? api.GET('/v1/courses/{course_id}', { params: { path: { course_id: idOrSlug } }, signal: abort.signal })
      : api.GET('/v1/courses:bySlug/{slug}', { params: { path: { slug: idOrSlug } }, signal: abort.signal });
    call(pending)
      .then(setCourse)
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(asApiError(e));
      });
    return () => abort.abort();
  }, [idOrSlug]);
  return { course, error };
}

/**
 * The signed-in learner's progress in a course: read once, then kept current over the
 * progress:watch stream (SSE with a ticket). `progress` is null while loading or when the
 * learner is not enrolled (`enrolled` false). `reload` re-reads it (after a write: the service
 * layer's consistency token makes the read see it).
 */
export function useProgress(courseId: string | undefined, { live = true, enabled = true } = {}) {
  const [progress, setProgress] = useState<CourseProgress | null>(null);
  const [state, setState] = useState<'loading' | 'enrolled' | 'not-enrolled' | 'error'>('loading');
  const [streaming, setStreaming] = useState(false);
  const mounted = useRef(true);

  const reload = useCallback(async () => {
    if (!courseId || !enabled) return;
    try {
      const data = await call(
        api.GET('/v1/users/me/courses/{course_id}/progress', { params: { path: { course_id: courseId } } }),
      );
      if (!mounted.current) return;
      if (data.progress) {
        setProgress(data.progress);
        setState('enrolled');
      }
    } catch (e) {
      if (!mounted.current) return;
      const err = asApiError(e);
      if (err.code === 'NOT_FOUND' || err.code === 'FAILED_PRECONDITION' || err.code === 'PERMISSION_DENIED') {
        setProgress(null);
        setState('not-enrolled');
      } else setState('error');
    }
  }, [courseId, enabled]);

  useEffect(() => {
    mounted.current = true;
    setState('loading');
    void reload();
    return () => {
      mounted.current = false;
    };
  }, [reload]);

  useEffect(() => {
    if (!courseId || !live || !enabled || state !== 'enrolled') return;
    return watchStream<{ progress?: CourseProgress }>({
      session,
      path: `/v1/users/me/courses/${encodeURIComponent(courseId)}/progress:watch`,
      onMessage: (data) => {
        const next = data.progress;
        if (next) setProgress((current) => newerProgress(current, next));
      },
      onStatus: setStreaming,
    });
  }, [courseId, live, enabled, state]);

  return { progress, state, streaming, reload, setProgress };
}

export function ProgressBar({ percent, label }: { percent: number; label: string }) {
  return (
    <div className="flex items-center gap-3">
      <div
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        className="h-2.5 w-full overflow-hidden rounded-full bg-slate-200 dark:bg-slate-800"
      >
        <div className="h-full rounded-full bg-brand-600 transition-[width] motion-reduce:transition-none dark:bg-brand-500" style={{ width: `${percent}%` }} />
      </div>
      <span className="w-12 shrink-0 text-right text-sm tabular-nums">{percent}%</span>
    </div>
  );
}

/** A polite live region for "saved", "enrolled" and the like. */
export function Status({ children }: { children: React.ReactNode }) {
  return (
    <p role="status" className="rounded-md border border-emerald-300 bg-emerald-50 px-4 py-3 text-emerald-900 dark:border-emerald-800 dark:bg-emerald-950 dark:text-emerald-100">
      {children}
    </p>
  );
}
