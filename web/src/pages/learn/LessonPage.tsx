/**
 * The lesson player: the lesson's content by type, "mark complete" (quizzes complete by being
 * passed), previous/next, the outline with completion ticks (kept live over SSE), and the
 * lesson's discussion.
 */
import { useEffect, useRef, useState } from 'react';
import { Link, useParams } from 'react-router';
import { actionHeaders, api, ApiError, call, newActionKey, type Lesson } from '../../api';
import { useAuth } from '../../auth/AuthContext';
import { Loading } from '../../components/Loading';
import { Alert, Button, PageTitle } from '../../components/ui';
import { asApiError, linkClass, ProgressBar, secondaryButton, Status, useCourse, useProgress } from './common';
import { Comments } from './Comments';
import { ArticleLesson, CodeExerciseLesson, contentType, QuizLesson, VideoLesson } from './LessonContent';
import { CONTENT_LABELS, isComplete, percentOf } from './progress';
import './learn.css';

export default function LessonPage() {
  const { courseId = '', lessonId = '' } = useParams();
  const { user, role } = useAuth();
  const { course: detail } = useCourse(courseId);
  const { progress, state, streaming, reload } = useProgress(courseId);
  const [lesson, setLesson] = useState<Lesson | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [completeError, setCompleteError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState('');
  const actionKey = useRef(newActionKey());
  // After "mark complete" the button is replaced: focus moves to the next lesson (or the note).
  const nextLink = useRef<HTMLAnchorElement>(null);
  const noticeRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const abort = new AbortController();
    setLesson(null);
    setError(null);
    setCompleteError(null);
    setNotice('');
    call(api.GET('/v1/courses/{course_id}/lessons/{lesson_id}', { params: { path: { course_id: courseId, lesson_id: lessonId } }, signal: abort.signal }))
      .then((data) => setLesson(data.lesson ?? null))
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(asApiError(e));
      });
    return () => abort.abort();
  }, [courseId, lessonId]);

  const lessons = detail?.lessons ?? [];
  const done = new Set(progress?.completedLessonIds ?? []);
  const completed = done.has(lessonId);
  const moderator = role === 'ROLE_ADMIN' || (!!user?.id && detail?.course?.ownerId === user.id);
  const kind = lesson ? contentType(lesson) : 'unknown';

  async function complete() {
    setBusy(true);
    setCompleteError(null);
    try {
      await call(api.POST('/v1/courses/{course_id}/lessons/{lesson_id}:complete', { params: { path: { course_id: courseId, lesson_id: lessonId } }, body: {}, headers: actionHeaders(actionKey.current) }));
      actionKey.current = newActionKey();
      setNotice('Lesson marked complete.');
      await reload();
      (nextLink.current ?? noticeRef.current)?.focus();
    } catch (e) {
      const err = asApiError(e);
      if (err.status >= 400 && err.status < 500) actionKey.current = newActionKey();
      setCompleteError(err);
    } finally {
      setBusy(false);
    }
  }

  if (error) {
    return (
      <>
        <PageTitle>Lesson</PageTitle>
        <Alert>{error.code === 'NOT_FOUND' ? 'No such lesson.' : error.message}</Alert>
        <p className="mt-4">
          <Link to={`/courses/${courseId}`} className={linkClass}>
            Back to the course
          </Link>
        </p>
      </>
    );
  }
  if (!lesson) return <Loading label="Loading the lesson…" />;

  const title = lesson.title ?? 'Lesson';
  const courseTitle = lesson.courseTitle ?? detail?.course?.title ?? 'Course';
  return (
    <div className="grid gap-8 lg:grid-cols-[16rem_minmax(0,1fr)]">
      <nav aria-label="Course outline" className="order-last lg:order-first">
        <p className="mb-2 font-semibold">
          <Link to={`/courses/${courseId}`} className={linkClass}>
            {courseTitle}
          </Link>
        </p>
        {progress && (
          <div className="mb-3">
            <ProgressBar percent={percentOf(progress)} label="Course progress" />
            <p className="mt-1 text-xs text-slate-600 dark:text-slate-400" aria-live="polite">
              {streaming ? 'Progress updates live.' : ''}
            </p>
          </div>
        )}
        <ol className="flex flex-col gap-1 text-sm">
          {lessons.map((l, i) => {
            const current = l.id === lessonId;
            const tick = done.has(l.id ?? '');
            return (
              <li key={l.id}>
                <Link
                  to={`/courses/${courseId}/lessons/${l.id}`}
                  aria-current={current ? 'page' : undefined}
                  className={`flex items-center gap-2 rounded-md px-2 py-1.5 hover:bg-slate-100 dark:hover:bg-slate-800 ${current ? 'bg-slate-100 font-semibold dark:bg-slate-800' : ''}`}
                >
                  <span aria-hidden="true" className={`flex size-5 shrink-0 items-center justify-center rounded-full text-[0.7rem] ${tick ? 'bg-emerald-600 text-white' : 'border border-slate-400 dark:border-slate-500'}`}>
                    {tick ? '✓' : i + 1}
                  </span>
                  <span className="min-w-0 flex-1">
                    {l.title}
                    <span className="sr-only">{tick ? ' (completed)' : ' (not completed)'}</span>
                  </span>
                </Link>
              </li>
            );
          })}
        </ol>
      </nav>

      <div className="min-w-0">
        <p className="mb-1 text-sm text-slate-600 dark:text-slate-400">
          Lesson {lesson.position ?? ''} · {CONTENT_LABELS[kind] ?? 'Lesson'}
          {completed ? ' · Completed' : ''}
        </p>
        <PageTitle>{title}</PageTitle>
        {state === 'not-enrolled' && moderator && (
          <p className="mb-4 rounded-md border border-slate-300 px-4 py-3 text-sm dark:border-slate-700">You are viewing this lesson as course staff.</p>
        )}
        {state === 'not-enrolled' && !moderator && (
          <div className="mb-4">
            <Alert>
              You are not enrolled in this course.{' '}
              <Link to={`/courses/${courseId}`} className="underline">
                Enrol on the course page
              </Link>
              .
            </Alert>
          </div>
        )}

        {kind === 'article' && <ArticleLesson markdown={lesson.article?.markdown ?? ''} />}
        {kind === 'video' && lesson.video && <VideoLesson title={title} video={lesson.video} />}
        {kind === 'code_exercise' && lesson.codeExercise && <CodeExerciseLesson exercise={lesson.codeExercise} />}
        {kind === 'quiz' && lesson.quiz && (
          <QuizLesson
            key={lessonId}
            courseId={courseId}
            lessonId={lessonId}
            quiz={lesson.quiz}
            bestScore={progress?.quizBestScores?.[lessonId]}
            passedBefore={completed}
            onAttempt={() => void reload()}
          />
        )}

        <div className="mt-8 flex flex-col gap-3">
          <div ref={noticeRef} tabIndex={-1} className="outline-none">
            {notice && <Status>{notice}</Status>}
          </div>
          {completeError && <Alert>{completeError.message}</Alert>}
          {isComplete(progress) && progress?.certificateId && (
            <Status>
              You completed the course.{' '}
              <Link to={`/certificates/${progress.certificateId}`} className="underline">
                View your certificate
              </Link>
            </Status>
          )}
          <div className="flex flex-wrap items-center gap-3">
            {kind !== 'quiz' &&
              state !== 'not-enrolled' &&
              (completed ? (
                <p className="font-medium text-emerald-700 dark:text-emerald-400">✓ Completed</p>
              ) : (
                <Button type="button" onClick={() => void complete()} disabled={busy}>
                  {busy ? 'Saving…' : 'Mark complete'}
                </Button>
              ))}
          </div>
          <nav aria-label="Lessons" className="mt-4 flex flex-wrap justify-between gap-3 border-t border-slate-200 pt-4 dark:border-slate-800">
            {lesson.previousLessonId ? (
              <Link to={`/courses/${courseId}/lessons/${lesson.previousLessonId}`} className={secondaryButton} rel="prev">
                ← Previous lesson
              </Link>
            ) : (
              <span />
            )}
            {lesson.nextLessonId && (
              <Link ref={nextLink} to={`/courses/${courseId}/lessons/${lesson.nextLessonId}`} className={secondaryButton} rel="next">
                Next lesson →
              </Link>
            )}
          </nav>
        </div>

        <Comments courseId={courseId} lessonId={lessonId} userId={user?.id} moderator={moderator} />
      </div>
    </div>
  );
}
