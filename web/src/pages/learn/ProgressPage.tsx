/**
 * One course's progress for the learner: every lesson with its completion and quiz best score,
 * kept live over the progress:watch stream (another tab completing a lesson shows here).
 */
import { Link, useParams } from 'react-router';
import { Loading } from '../../components/Loading';
import { Alert, PageTitle } from '../../components/ui';
import { formatDate, linkClass, ProgressBar, useCourse, useProgress } from './common';
import { CONTENT_LABELS, isComplete, percentOf, resumeLessonId } from './progress';

export default function ProgressPage() {
  const { courseId = '' } = useParams();
  const { course: detail } = useCourse(courseId);
  const { progress, state, streaming } = useProgress(courseId);
  const lessons = detail?.lessons ?? [];
  const title = progress?.courseTitle ?? detail?.course?.title ?? 'Course';

  if (state === 'loading') return <Loading label="Loading your progress…" />;
  if (state === 'not-enrolled' || state === 'error' || !progress) {
    return (
      <>
        <PageTitle>Progress</PageTitle>
        <Alert>{state === 'not-enrolled' ? 'You are not enrolled in this course.' : 'Your progress could not be loaded.'}</Alert>
        <p className="mt-4">
          <Link to={`/courses/${courseId}`} className={linkClass}>
            Go to the course
          </Link>
        </p>
      </>
    );
  }
  const done = new Set(progress.completedLessonIds ?? []);
  const scores = progress.quizBestScores ?? {};
  const resume = resumeLessonId(progress, lessons);
  return (
    <div>
      <PageTitle>{`Progress: ${title}`}</PageTitle>
      <div className="mb-6 max-w-xl">
        <ProgressBar percent={percentOf(progress)} label={`Progress in ${title}`} />
        <p className="mt-2 text-sm text-slate-600 dark:text-slate-400" aria-live="polite">
          {done.size} of {progress.lessonCount ?? lessons.length} lessons done
          {progress.lastActivityTime ? ` · last activity ${formatDate(progress.lastActivityTime)}` : ''}
          {streaming ? ' · updates live' : ''}
        </p>
      </div>
      {isComplete(progress) && progress.certificateId && (
        <p className="mb-6">
          Course complete.{' '}
          <Link to={`/certificates/${progress.certificateId}`} className={linkClass}>
            View your certificate
          </Link>
        </p>
      )}
      {!isComplete(progress) && resume && (
        <p className="mb-6">
          <Link to={`/courses/${courseId}/lessons/${resume}`} className="inline-flex rounded-md bg-brand-600 px-4 py-2 font-medium text-white hover:bg-brand-700">
            Resume
          </Link>
        </p>
      )}
      <table className="w-full text-left text-sm">
        <caption className="sr-only">Lessons of {title}</caption>
        <thead>
          <tr className="border-b border-slate-200 dark:border-slate-800">
            <th scope="col" className="py-2 pr-3">#</th>
            <th scope="col" className="py-2 pr-3">Lesson</th>
            <th scope="col" className="hidden py-2 pr-3 sm:table-cell">Type</th>
            <th scope="col" className="py-2">Status</th>
          </tr>
        </thead>
        <tbody>
          {lessons.map((l, i) => (
            <tr key={l.id} className="border-b border-slate-100 dark:border-slate-900">
              <td className="py-2 pr-3 tabular-nums">{i + 1}</td>
              <td className="py-2 pr-3">
                <Link to={`/courses/${courseId}/lessons/${l.id}`} className={linkClass}>
                  {l.title}
                </Link>
              </td>
              <td className="hidden py-2 pr-3 sm:table-cell">{CONTENT_LABELS[l.contentType ?? ''] ?? ''}</td>
              <td className="py-2">
                {done.has(l.id ?? '') ? <span className="text-emerald-700 dark:text-emerald-400">✓ Done</span> : 'To do'}
                {l.id && scores[l.id] !== undefined ? ` · best ${scores[l.id]}%` : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
