/** The lesson player's content, one component per content type of the contract's oneof. */
import { lazy, Suspense, useId, useRef, useState, type FormEvent } from 'react';
import { actionHeaders, api, ApiError, call, newActionKey, type Lesson, type Quiz, type QuizAttemptResult } from '../../api';
import { Loading } from '../../components/Loading';
import { Alert, Button } from '../../components/ui';
import { asApiError } from './common';
import { attemptsLeft, passThreshold, toAnswers, toggleChoice, unanswered, type Choices } from './quiz';

const Markdown = lazy(() => import('../../components/Markdown'));

export function contentType(lesson: Lesson): 'article' | 'video' | 'quiz' | 'code_exercise' | 'unknown' {
  if (lesson.article) return 'article';
  if (lesson.video) return 'video';
  if (lesson.quiz) return 'quiz';
  if (lesson.codeExercise) return 'code_exercise';
  return 'unknown';
}

export function ArticleLesson({ markdown }: { markdown: string }) {
  return (
    <Suspense fallback={<Loading label="Loading the article…" />}>
      <Markdown source={markdown} className="lesson-article" headingOffset={1} />
    </Suspense>
  );
}

/** A YouTube or Vimeo page URL as its embeddable player; null for anything else. */
export function embedUrl(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== 'https:') return null;
  const host = u.hostname.replace(/^www\./, '');
  if (host === 'youtube.com' && u.pathname === '/watch' && u.searchParams.get('v')) {
    return `https://www.youtube-nocookie.com/embed/${encodeURIComponent(u.searchParams.get('v') ?? '')}`;
  }
  if (host === 'youtu.be' && u.pathname.length > 1) return `https://www.youtube-nocookie.com/embed/${encodeURIComponent(u.pathname.slice(1))}`;
  const vimeo = host === 'vimeo.com' ? /^\/(\d+)$/.exec(u.pathname) : null;
  if (vimeo) return `https://player.vimeo.com/video/${vimeo[1]}`;
  return null;
}

function duration(seconds: number | undefined): string {
  if (!seconds) return '';
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${m}:${String(s).padStart(2, '0')}`;
}

export function VideoLesson({ title, video }: { title: string; video: NonNullable<Lesson['video']> }) {
  const url = video.url ?? '';
  const embed = embedUrl(url);
  return (
    <div>
      <div className="aspect-video w-full overflow-hidden rounded-lg bg-black">
        {embed ? (
          <iframe src={embed} title={`Video: ${title}`} className="size-full" allow="fullscreen; picture-in-picture" allowFullScreen referrerPolicy="strict-origin-when-cross-origin" />
        ) : (
          // Native controls are keyboard-usable; `preload="none"` spends no bandwidth before play.
          // The contract has no caption tracks, so none are offered.
          <video src={url} controls preload="none" className="size-full" aria-label={`Video: ${title}`}>
            <a href={url}>Open the video</a>
          </video>
        )}
      </div>
      <p className="mt-2 text-sm text-slate-600 dark:text-slate-400">
        {video.durationSeconds ? `Length ${duration(video.durationSeconds)} · ` : ''}
        <a href={url} target="_blank" rel="noopener noreferrer" className="underline">
          Open the video in a new tab
        </a>
      </p>
    </div>
  );
}

export function CodeExerciseLesson({ exercise }: { exercise: NonNullable<Lesson['codeExercise']> }) {
  const id = useId();
  const [code, setCode] = useState(exercise.starterCode ?? '');
  return (
    <div className="flex flex-col gap-4">
      <section aria-labelledby={`${id}-task`}>
        <h2 id={`${id}-task`} className="mb-2 text-lg font-semibold">
          Instructions
        </h2>
        <ArticleLesson markdown={exercise.prompt ?? ''} />
      </section>
      <div className="flex flex-col gap-1">
        <label htmlFor={`${id}-code`} className="text-sm font-medium">
          Your code{exercise.language ? ` (${exercise.language})` : ''}
        </label>
        <textarea
          id={`${id}-code`}
          value={code}
          onChange={(e) => setCode(e.target.value)}
          spellCheck={false}
          autoCapitalize="off"
          autoCorrect="off"
          rows={Math.min(24, Math.max(8, code.split('\n').length + 2))}
          aria-describedby={`${id}-hint`}
          className="w-full rounded-md border border-slate-300 bg-slate-50 p-3 font-mono text-sm text-slate-900 dark:border-slate-600 dark:bg-slate-900 dark:text-slate-100"
        />
        <p id={`${id}-hint`} className="text-xs text-slate-600 dark:text-slate-400">
          Work here or in your own editor; your code stays in this page (it is not sent anywhere). Mark the lesson complete when you are done.
        </p>
      </div>
      <div>
        <button type="button" onClick={() => setCode(exercise.starterCode ?? '')} className="text-sm underline">
          Reset to the starter code
        </button>
      </div>
    </div>
  );
}

/** Quiz text with its `code` spans shown as code (plain React text: nothing is parsed as HTML). */
export function InlineCode({ text }: { text: string }) {
  const parts = text.split(/`([^`]+)`/);
  return (
    <>
      {parts.map((part, i) =>
        i % 2 === 1 ? (
          <code key={i} className="rounded bg-slate-100 px-1 font-mono text-[0.9em] dark:bg-slate-800">
            {part}
          </code>
        ) : (
          part
        ),
      )}
    </>
  );
}

interface QuizProps {
  courseId: string;
  lessonId: string;
  quiz: Quiz;
  bestScore: number | undefined;
  passedBefore: boolean;
  onAttempt: (result: QuizAttemptResult) => void;
}

export function QuizLesson({ courseId, lessonId, quiz, bestScore, passedBefore, onAttempt }: QuizProps) {
  const questions = quiz.questions ?? [];
  const [choices, setChoices] = useState<Choices>({});
  const [result, setResult] = useState<QuizAttemptResult | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [missing, setMissing] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [used, setUsed] = useState(0);
  const actionKey = useRef(newActionKey());
  const threshold = passThreshold(quiz.passThresholdPercent);
  const left = attemptsLeft(quiz.maxAttempts, used);
  const best = Math.max(bestScore ?? 0, result?.bestScore ?? 0);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const empty = unanswered(questions, choices);
    setMissing(empty.map((q) => q.id ?? ''));
    if (empty.length > 0) return;
    setBusy(true);
    setError(null);
    try {
      const data = await call(
        api.POST('/v1/courses/{course_id}/lessons/{lesson_id}/quizAttempts', {
          params: { path: { course_id: courseId, lesson_id: lessonId } },
          body: { answers: toAnswers(questions, choices) },
          headers: actionHeaders(actionKey.current),
        }),
      );
      actionKey.current = newActionKey();
      setUsed((n) => n + 1);
      setResult(data);
      onAttempt(data);
    } catch (e) {
      const err = asApiError(e);
      if (err.status >= 400 && err.status < 500) actionKey.current = newActionKey();
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={(e) => void submit(e)} noValidate className="flex flex-col gap-6">
      <p className="text-sm text-slate-700 dark:text-slate-300">
        Pass with {threshold}% or more.{' '}
        {quiz.maxAttempts ? `${quiz.maxAttempts} attempts allowed${left !== null && used > 0 ? ` (at most ${left} left)` : ''}.` : 'Unlimited attempts.'}{' '}
        {best > 0 || passedBefore ? `Best score so far: ${best}%.` : ''}
      </p>
      {questions.map((q, qi) => {
        const chosen = choices[q.id ?? ''] ?? [];
        const isMissing = missing.includes(q.id ?? '');
        return (
          <fieldset key={q.id ?? qi} aria-describedby={isMissing ? `miss-${q.id}` : undefined} className="rounded-lg border border-slate-200 p-4 dark:border-slate-800">
            <legend className="px-1 font-medium">
              {qi + 1}. <InlineCode text={q.prompt ?? ''} />
            </legend>
            <p className="mb-2 text-xs text-slate-600 dark:text-slate-400">Select all that apply.</p>
            <ul className="flex flex-col gap-2">
              {(q.choices ?? []).map((choice, ci) => (
                <li key={ci}>
                  <label className="flex cursor-pointer items-start gap-2 rounded-md px-2 py-1 hover:bg-slate-50 dark:hover:bg-slate-900">
                    <input
                      type="checkbox"
                      className="mt-1 size-4"
                      checked={chosen.includes(ci)}
                      onChange={() => setChoices((c) => toggleChoice(c, q.id ?? '', ci))}
                    />
                    <span>
                      <InlineCode text={choice} />
                    </span>
                  </label>
                </li>
              ))}
            </ul>
            {isMissing && (
              <p id={`miss-${q.id}`} className="mt-2 text-sm text-red-700 dark:text-red-400">
                Choose at least one answer.
              </p>
            )}
          </fieldset>
        );
      })}
      <div className="flex flex-wrap items-center gap-3">
        <Button type="submit" disabled={busy || left === 0}>
          {busy ? 'Submitting…' : result ? 'Submit another attempt' : 'Submit answers'}
        </Button>
      </div>
      {error && <Alert>{error.message}</Alert>}
      <div aria-live="polite">
        {result && (
          <div
            className={`rounded-md border px-4 py-3 ${result.passed ? 'border-emerald-300 bg-emerald-50 text-emerald-900 dark:border-emerald-800 dark:bg-emerald-950 dark:text-emerald-100' : 'border-amber-300 bg-amber-50 text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-100'}`}
          >
            <p className="font-semibold">
              {result.passed ? 'Passed' : 'Not passed'}: you scored {result.score ?? 0}%.
            </p>
            <p className="text-sm">
              Best score: {result.bestScore ?? result.score ?? 0}%.{' '}
              {result.passed ? 'The lesson is complete.' : `You need ${threshold}% to pass.`}
            </p>
          </div>
        )}
      </div>
    </form>
  );
}
