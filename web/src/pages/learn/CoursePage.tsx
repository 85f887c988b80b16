/**
 * A course's page (by slug, or by id): summary, instructor, level, tags, the outline, and the
 * enrolment button with its states (enrolled → resume, full, closed, not published). The
 * enrolment shows at once: the service layer sends the write's consistency token with the
 * following read.
 */
import { useEffect, useRef, useState } from 'react';
import { Link, useLocation, useParams } from 'react-router';
import { actionHeaders, api, ApiError, call, newActionKey } from '../../api';
import { useAuth } from '../../auth/AuthContext';
import { Loading } from '../../components/Loading';
import { Alert, Button, PageTitle } from '../../components/ui';
import { asApiError, LEVEL_NAMES, linkClass, ProgressBar, Status, useCourse, useProgress } from './common';
import { CONTENT_LABELS, enrolBlocker, isComplete, isEnrolled, percentOf, resumeLessonId } from './progress';

const BLOCKED: Record<string, string> = {
  'not-published': 'This course is not published: it is not open for enrolment.',
  full: 'This course is full.',
  'not-open': 'Enrolment has not opened yet.',
  closed: 'Enrolment is closed.',
};

export default function CoursePage() {
  const { slug } = useParams();
  const { status } = useAuth();
  const location = useLocation();
  const { course: detail, error } = useCourse(slug);
  const course = detail?.course;
  const lessons = detail?.lessons ?? [];
  const signedIn = status === 'signed-in';
  const { progress, state, reload } = useProgress(course?.id, { live: false, enabled: signedIn && !!course?.id });
  const [enrolError, setEnrolError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [justEnrolled, setJustEnrolled] = useState(false);
  const actionKey = useRef(newActionKey());
  const startLink = useRef<HTMLAnchorElement>(null);

  // The Enrol button is gone once enrolled: keep keyboard focus on what replaces it.
  useEffect(() => {
    if (justEnrolled && state === 'enrolled') startLink.current?.focus();
  }, [justEnrolled, state]);

  if (error) return <><PageTitle>Course</PageTitle><Alert>{error.code === 'NOT_FOUND' ? 'No such course.' : error.message}</Alert></>;
  if (!course) return <Loading label="Loading the course…" />;

  async function enrol() {
    if (!course?.id) return;
    setBusy(true);
    setEnrolError(null);
    try {
      await call(api.POST('/v1/courses/{course_id}/enrollments', {
        params: { path: { course_id: course.id } },
        body: {},
        headers: actionHeaders(actionKey.current),
      }));
      actionKey.current = newActionKey();
      setJustEnrolled(true);
      await reload();
    } catch (e) {
      const err = asApiError(e);
      if (err.status >= 400 && err.status < 500) actionKey.current = newActionKey();
      setEnrolError(err);
    } finally {
      setBusy(false);
    }
  }

  const enrolled = isEnrolled(progress);
  const blocker = enrolBlocker(course);
  const resume = resumeLessonId(progress, lessons);
  const done = new Set(progress?.completedLessonIds ?? []);
  const started = (progress?.completedLessonIds?.length ?? 0) > 0 || !!progress?.lastLessonId;

  return (
    <article>
      <PageTitle>{course.title ?? 'Course'}</PageTitle>
      <div className="grid gap-8 lg:grid-cols-[2fr_1fr]">
        <div className="min-w-0">
          {course.instructorName && <p className="text-slate-700 dark:text-slate-300">by {course.instructorName}</p>}
          <p className="mt-1 text-sm text-slate-600 dark:text-slate-400">
            {LEVEL_NAMES[course.level ?? ''] ?? 'Any level'} · {lessons.length} lessons · {course.enrollmentCount ?? 0} enrolled
            {course.capacity ? ` · ${course.capacity} seats` : ''}
          </p>
          {course.summary && <p className="mt-4 text-lg">{course.summary}</p>}
          {course.tags && course.tags.length > 0 && (
            <ul className="mt-4 flex flex-wrap gap-2" aria-label="Tags">
              {course.tags.map((t) => (
                <li key={t}>
                  <Link to={`/courses?tag=${encodeURIComponent(t)}`} className="rounded bg-slate-100 px-2 py-0.5 text-sm hover:underline dark:bg-slate-800">
                    {t}
                  </Link>
                </li>
              ))}
            </ul>
          )}
          <h2 className="mt-8 mb-3 text-xl font-semibold">Outline</h2>
          {lessons.length === 0 ? (
            <p>No lessons yet.</p>
          ) : (
            <ol className="divide-y divide-slate-200 rounded-lg border border-slate-200 dark:divide-slate-800 dark:border-slate-800" aria-label="Lessons">
              {lessons.map((l, i) => (
                <li key={l.id} className="flex items-center gap-3 px-4 py-3">
                  <span aria-hidden="true" className={`flex size-6 shrink-0 items-center justify-center rounded-full text-xs ${done.has(l.id ?? '') ? 'bg-emerald-600 text-white' : 'bg-slate-100 dark:bg-slate-800'}`}>
                    {done.has(l.id ?? '') ? '✓' : i + 1}
                  </span>
                  <span className="min-w-0 flex-1">
                    {enrolled ? (
                      <Link to={`/courses/${course.id}/lessons/${l.id}`} className={linkClass}>
                        {l.title}
                      </Link>
                    ) : (
                      l.title
                    )}
                    {done.has(l.id ?? '') && <span className="sr-only"> (completed)</span>}
                  </span>
                  <span className="text-xs text-slate-600 dark:text-slate-400">{CONTENT_LABELS[l.contentType ?? ''] ?? ''}</span>
                </li>
              ))}
            </ol>
          )}
        </div>

        <aside aria-label="Enrolment" className="h-fit rounded-lg border border-slate-200 p-5 dark:border-slate-800">
          {!signedIn && status !== 'loading' && (
            <>
              <p className="mb-3">Log in to enrol in this course.</p>
              <Link to={`/login?next=${encodeURIComponent(location.pathname)}`} className="inline-flex rounded-md bg-brand-600 px-4 py-2 font-medium text-white hover:bg-brand-700">
                Log in to enrol
              </Link>
            </>
          )}
          {signedIn && state === 'loading' && <Loading label="Checking your enrolment…" />}
          {signedIn && state !== 'loading' && enrolled && (
            <div className="flex flex-col gap-3">
              {justEnrolled && <Status>You are enrolled.</Status>}
              <p className="font-medium">{isComplete(progress) ? 'You completed this course.' : 'You are enrolled.'}</p>
              <ProgressBar percent={percentOf(progress)} label="Course progress" />
              {resume && (
                <Link ref={startLink} to={`/courses/${course.id}/lessons/${resume}`} className="inline-flex justify-center rounded-md bg-brand-600 px-4 py-2 font-medium text-white hover:bg-brand-700">
                  {isComplete(progress) ? 'Review the course' : started ? 'Resume' : 'Start the first lesson'}
                </Link>
              )}
              <Link to={`/learn/courses/${course.id}`} className={linkClass}>
                Your progress
              </Link>
              {progress?.certificateId && (
                <Link to={`/certificates/${progress.certificateId}`} className={linkClass}>
                  Your certificate
                </Link>
              )}
            </div>
          )}
          {signedIn && state !== 'loading' && !enrolled && (
            <div className="flex flex-col gap-3">
              {blocker ? (
                <p role="status">{BLOCKED[blocker]}</p>
              ) : (
                <Button type="button" onClick={() => void enrol()} disabled={busy}>
                  {busy ? 'Enrolling…' : progress?.state === 'ENROLLMENT_STATE_WITHDRAWN' ? 'Enrol again' : 'Enrol'}
                </Button>
              )}
              {enrolError && <Alert>{enrolError.message}</Alert>}
            </div>
          )}
        </aside>
      </div>
    </article>
  );
}
