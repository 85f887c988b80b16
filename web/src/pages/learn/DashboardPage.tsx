/**
 * "My learning": the learner's enrolments (GET /v1/users/me/enrollments, most recent activity
 * first) with each course's percent, a resume link (the next lesson to do, else the last one
 * touched), the progress page, and the certificate once the course is complete.
 */
import { useCallback, useEffect, useState } from 'react';
import { Link } from 'react-router';
import { api, ApiError, call, type CourseProgress } from '../../api';
import { Loading } from '../../components/Loading';
import { Alert, PageTitle } from '../../components/ui';
import { asApiError, formatDate, linkClass, ProgressBar, secondaryButton } from './common';
import { isComplete, percentOf, resumeLessonId } from './progress';

export default function DashboardPage() {
  const [items, setItems] = useState<CourseProgress[] | null>(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState<ApiError | null>(null);

  const load = useCallback(async (pageToken: string, signal?: AbortSignal) => {
    try {
      const query = pageToken ? { pageSize: 20, pageToken } : { pageSize: 20 };
      const data = await call(api.GET('/v1/users/me/enrollments', { params: { query }, signal }));
      setItems((current) => (pageToken ? [...(current ?? []), ...(data.enrollments ?? [])] : (data.enrollments ?? [])));
      setNext(data.nextPageToken ?? '');
    } catch (e) {
      if (!signal?.aborted) setError(asApiError(e));
    }
  }, []);

  useEffect(() => {
    const abort = new AbortController();
    void load('', abort.signal);
    return () => abort.abort();
  }, [load]);

  const active = (items ?? []).filter((p) => p.state !== 'ENROLLMENT_STATE_WITHDRAWN');
  return (
    <div>
      <PageTitle>My learning</PageTitle>
      {error && <Alert>{error.message}</Alert>}
      {!items && !error && <Loading label="Loading your courses…" />}
      {items && active.length === 0 && (
        <p>
          You are not enrolled in any course yet.{' '}
          <Link to="/courses" className={linkClass}>
            Browse the catalog
          </Link>
          .
        </p>
      )}
      {active.length > 0 && (
        <ul className="grid gap-4 md:grid-cols-2" aria-label="Your courses">
          {active.map((p) => (
            <EnrollmentCard key={p.courseId} progress={p} />
          ))}
        </ul>
      )}
      {next && (
        <button type="button" className={`${secondaryButton} mt-6`} onClick={() => void load(next)}>
          More courses
        </button>
      )}
    </div>
  );
}

function EnrollmentCard({ progress }: { progress: CourseProgress }) {
  const courseId = progress.courseId ?? '';
  const resume = resumeLessonId(progress);
  const done = isComplete(progress);
  const percent = percentOf(progress);
  const title = progress.courseTitle ?? 'Course';
  return (
    <li className="flex flex-col gap-3 rounded-lg border border-slate-200 p-5 dark:border-slate-800">
      <h2 className="text-lg font-semibold">
        <Link to={`/courses/${courseId}`} className="hover:underline">
          {title}
        </Link>
      </h2>
      <ProgressBar percent={percent} label={`Progress in ${title}`} />
      <p className="text-sm text-slate-600 dark:text-slate-400">
        {progress.completedLessonIds?.length ?? 0} of {progress.lessonCount ?? 0} lessons done
        {progress.lastActivityTime ? ` · last activity ${formatDate(progress.lastActivityTime)}` : ''}
      </p>
      <div className="mt-auto flex flex-wrap items-center gap-3">
        {resume && !done && (
          <Link
            to={`/courses/${courseId}/lessons/${resume}`}
            className="inline-flex rounded-md bg-brand-600 px-4 py-2 font-medium text-white hover:bg-brand-700"
            aria-label={`Resume ${title}`}
          >
            {percent > 0 || progress.lastLessonId ? 'Resume' : 'Start'}
          </Link>
        )}
        {done && progress.certificateId && (
          <Link
            to={`/certificates/${progress.certificateId}`}
            className="inline-flex rounded-md bg-emerald-700 px-4 py-2 font-medium text-white hover:bg-emerald-800"
            aria-label={`Certificate for ${title}`}
          >
            Certificate
          </Link>
        )}
        <Link to={`/learn/courses/${courseId}`} className={linkClass} aria-label={`Progress in ${title}`}>
          Progress
        </Link>
      </div>
    </li>
  );
}
