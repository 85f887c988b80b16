/**
 * The form of one lesson, of any content type: article (markdown with a preview), video,
 * quiz (questions, choices, correct answers, pass mark, attempts) or code exercise.
 * Creates (POST) when `saved` is absent, else PATCHes the changed fields.
 */
import { lazy, Suspense, useId, useRef, useState, type FormEvent } from 'react';
import { actionHeaders, api, call, newActionKey, type ApiError, type Lesson } from '../../api';
import { Loading } from '../../components/Loading';
import { ErrorSummary, Select, TextArea, asApiError, control, danger, fieldError, secondary } from '../../components/staff';
import { Button, Field } from '../../components/ui';
import {
  LESSON_KINDS,
  lessonDraft,
  lessonPatch,
  lessonToCreate,
  newQuestion,
  removeChoice,
  toggleCorrect,
  type LessonDraft,
  type LessonKind,
  type QuestionDraft,
} from './forms';

const Markdown = lazy(() => import('../../components/Markdown'));

export function LessonEditor({
  courseId,
  saved,
  onDone,
  onCancel,
}: {
  courseId: string;
  saved?: Lesson;
  onDone: (lesson: Lesson | undefined) => void;
  onCancel: () => void;
}) {
  const [draft, setDraft] = useState<LessonDraft>(() => lessonDraft('article', saved));
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState(false);
  const actionKey = useRef(newActionKey());
  const headingId = useId();
  const set = (changes: Partial<LessonDraft>) => setDraft((d) => ({ ...d, ...changes }));
  const err = (path: string) => fieldError(error, `lesson.${path}`, path);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      let lesson: Lesson | undefined;
      if (saved?.id) {
        const patch = lessonPatch(saved, draft);
        if (patch.mask.length === 0) {
          onDone(saved);
          return;
        }
        const data = await call(
          api.PATCH('/v1/courses/{course_id}/lessons/{lesson_id}', {
            params: { path: { course_id: courseId, lesson_id: saved.id }, query: { updateMask: patch.mask.join(',') } },
            body: patch.lesson,
            headers: actionHeaders(actionKey.current),
          }),
        );
        lesson = data.lesson;
      } else {
        const data = await call(
          api.POST('/v1/courses/{course_id}/lessons', {
            params: { path: { course_id: courseId } },
            body: { lesson: lessonToCreate(draft) },
            headers: actionHeaders(actionKey.current),
          }),
        );
        lesson = data.lesson;
      }
      actionKey.current = newActionKey();
      onDone(lesson);
    } catch (e) {
      const apiError = asApiError(e);
      if (apiError.status >= 400 && apiError.status < 500) actionKey.current = newActionKey();
      setError(apiError);
    } finally {
      setBusy(false);
    }
  }

  const shown = ['lesson.title', 'lesson.article.markdown', 'lesson.video.url', 'lesson.video.durationSeconds', 'lesson.codeExercise.language', 'lesson.codeExercise.prompt'];
  return (
    <form onSubmit={submit} noValidate aria-labelledby={headingId} className="flex flex-col gap-4 rounded-lg border border-brand-500 p-4">
      <h3 id={headingId} className="text-lg font-semibold">
        {saved ? `Edit lesson “${saved.title}”` : 'New lesson'}
      </h3>
      <ErrorSummary error={error} shown={shown} />
      <Field label="Lesson title" value={draft.title} onChange={(e) => set({ title: e.target.value })} required error={err('title')} />
      <Select label="Type" value={draft.kind} onChange={(e) => set({ kind: e.target.value as LessonKind })}>
        {LESSON_KINDS.map((k) => (
          <option key={k.value} value={k.value}>
            {k.label}
          </option>
        ))}
      </Select>

      {draft.kind === 'article' && (
        <div className="flex flex-col gap-2">
          <div role="group" aria-label="Article view" className="flex gap-2">
            <Button type="button" className={preview ? secondary : ''} aria-pressed={!preview} onClick={() => setPreview(false)}>
              Write
            </Button>
            <Button type="button" className={preview ? '' : secondary} aria-pressed={preview} onClick={() => setPreview(true)}>
              Preview
            </Button>
          </div>
          {preview ? (
            <section aria-label="Article preview" className="min-h-24 rounded-md border border-slate-200 p-3 dark:border-slate-700">
              <Suspense fallback={<Loading label="Rendering…" />}>
                <Markdown source={draft.markdown || '*Nothing to preview yet.*'} />
              </Suspense>
            </section>
          ) : (
            <TextArea label="Article (Markdown)" mono rows={10} value={draft.markdown} onChange={(e) => set({ markdown: e.target.value })} error={err('article.markdown')} />
          )}
        </div>
      )}

      {draft.kind === 'video' && (
        <div className="grid gap-4 sm:grid-cols-[3fr_1fr]">
          <Field label="Video URL (https)" type="url" value={draft.videoUrl} onChange={(e) => set({ videoUrl: e.target.value })} error={err('video.url')} />
          <Field label="Duration (seconds)" type="number" min={1} max={86400} value={draft.durationSeconds} onChange={(e) => set({ durationSeconds: e.target.value })} error={err('video.durationSeconds')} />
        </div>
      )}

      {draft.kind === 'quiz' && <QuizFields draft={draft} set={set} />}

      {draft.kind === 'codeExercise' && (
        <div className="flex flex-col gap-4">
          <Field label="Language" value={draft.language} onChange={(e) => set({ language: e.target.value })} error={err('codeExercise.language')} />
          <TextArea label="Exercise prompt (Markdown)" mono rows={5} value={draft.prompt} onChange={(e) => set({ prompt: e.target.value })} error={err('codeExercise.prompt')} />
          <TextArea label="Starter code" mono rows={6} spellCheck={false} value={draft.starterCode} onChange={(e) => set({ starterCode: e.target.value })} />
        </div>
      )}

      <div className="flex flex-wrap gap-3">
        <Button type="submit" disabled={busy}>
          {busy ? 'Saving…' : saved ? 'Save lesson' : 'Add lesson'}
        </Button>
        <Button type="button" className={secondary} onClick={onCancel}>
          Cancel
        </Button>
      </div>
    </form>
  );
}

function QuizFields({ draft, set }: { draft: LessonDraft; set: (changes: Partial<LessonDraft>) => void }) {
  const update = (index: number, question: QuestionDraft) =>
    set({ questions: draft.questions.map((q, i) => (i === index ? question : q)) });
  return (
    <div className="flex flex-col gap-4">
      <div className="grid gap-4 sm:grid-cols-2">
        <Field label="Pass mark (%)" type="number" min={1} max={100} value={draft.passThresholdPercent} onChange={(e) => set({ passThresholdPercent: e.target.value })} />
        <Field label="Attempts allowed (0 = unlimited)" type="number" min={0} max={100} value={draft.maxAttempts} onChange={(e) => set({ maxAttempts: e.target.value })} />
      </div>
      {draft.questions.map((question, qi) => (
        <fieldset key={qi} className="flex flex-col gap-3 rounded-md border border-slate-200 p-3 dark:border-slate-700">
          <legend className="px-1 text-sm font-semibold">Question {qi + 1}</legend>
          <TextArea label={`Question ${qi + 1} text`} rows={2} value={question.prompt} onChange={(e) => update(qi, { ...question, prompt: e.target.value })} />
          <ol className="flex flex-col gap-2">
            {question.choices.map((choice, ci) => (
              <li key={ci} className="flex flex-wrap items-center gap-2">
                <label className="flex items-center gap-1 text-sm">
                  <input type="checkbox" checked={question.correct.includes(ci)} onChange={() => update(qi, toggleCorrect(question, ci))} />
                  Correct
                  <span className="sr-only">: choice {ci + 1} of question {qi + 1}</span>
                </label>
                <input
                  aria-label={`Question ${qi + 1}, choice ${ci + 1}`}
                  value={choice}
                  onChange={(e) => update(qi, { ...question, choices: question.choices.map((c, i) => (i === ci ? e.target.value : c)) })}
                  className={`${control} min-w-0 flex-1`}
                />
                <Button type="button" className={secondary} disabled={question.choices.length <= 2} onClick={() => update(qi, removeChoice(question, ci))} aria-label={`Remove choice ${ci + 1} of question ${qi + 1}`}>
                  Remove
                </Button>
              </li>
            ))}
          </ol>
          <div className="flex flex-wrap gap-2">
            <Button type="button" className={secondary} disabled={question.choices.length >= 10} onClick={() => update(qi, { ...question, choices: [...question.choices, ''] })}>
              Add choice<span className="sr-only"> to question {qi + 1}</span>
            </Button>
            <Button type="button" className={danger} disabled={draft.questions.length <= 1} onClick={() => set({ questions: draft.questions.filter((_, i) => i !== qi) })}>
              Remove question {qi + 1}
            </Button>
          </div>
        </fieldset>
      ))}
      <Button type="button" className={`${secondary} self-start`} disabled={draft.questions.length >= 50} onClick={() => set({ questions: [...draft.questions, newQuestion()] })}>
        Add question
      </Button>
    </div>
  );
}
