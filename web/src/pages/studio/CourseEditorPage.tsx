/**
 * One course in the studio: its details (PATCH with an update mask of the changed fields),
 * its lifecycle (publish, unpublish, archive, restore, delete draft — each confirmed, and the
 * server's refusal shown as it says it), and its lessons (add, edit, reorder with move
 * up/down buttons, delete).
 */
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { actionHeaders, api, call, newActionKey, type ApiError, type Course, type Lesson, type LessonSummary } from '../../api';
import { Loading } from '../../components/Loading';
import { ErrorSummary, Notice, Select, TextArea, asApiError, danger, fieldError, formatTime, secondary, useConfirm, type ConfirmOptions } from '../../components/staff';
import { Alert, Button, Field, PageTitle } from '../../components/ui';
import { courseDraft, courseFromDraft, courseMask, moveLesson, type CourseDraft } from './forms';
import { LessonEditor } from './LessonEditor';
import { LEVEL_NAMES, STATE_BADGE, STATE_NAMES } from './labels';

const KIND_NAMES: Record<string, string> = {
  article: 'Article',
  video: 'Video',
  quiz: 'Quiz',
  code_exercise: 'Code exercise',
  codeExercise: 'Code exercise',
};

type Transition = 'publish' | 'unpublish' | 'archive' | 'restore';

const TRANSITIONS: Record<Transition, ConfirmOptions & { done: string }> = {
  publish: { title: 'Publish this course?', body: 'It appears in the catalog and learners can enroll.', confirm: 'Publish', done: 'Published.' },
  unpublish: { title: 'Unpublish this course?', body: 'It goes back to draft and leaves the catalog. Only possible while no one is enrolled.', confirm: 'Unpublish', done: 'Back to draft.' },
  archive: { title: 'Archive this course?', body: 'It leaves the catalog and can no longer be changed; enrolled learners keep access.', confirm: 'Archive', dangerous: true, done: 'Archived.' },
  restore: { title: 'Restore this course?', body: 'It comes back as a draft you can edit and publish again.', confirm: 'Restore', done: 'Restored as a draft.' },
};

export default function CourseEditorPage() {
  const { courseId = '' } = useParams();
  const navigate = useNavigate();
  const [course, setCourse] = useState<Course | null>(null);
  const [lessons, setLessons] = useState<LessonSummary[]>([]);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);
  const [editing, setEditing] = useState<{ lesson?: Lesson } | null>(null);
  const [dialog, confirm] = useConfirm();
  const refocus = useRef('');

  useEffect(() => {
    if (busy || !refocus.current) return;
    const button = document.getElementById(refocus.current);
    refocus.current = '';
    // At the top or bottom the same button is now disabled: the other one takes focus.
    if (button && !(button as HTMLButtonElement).disabled) button.focus();
    else button?.parentElement?.querySelector<HTMLButtonElement>('button:not(:disabled)')?.focus();
  }, [busy, lessons]);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      try {
        const data = await call(api.GET('/v1/courses/{course_id}', { params: { path: { course_id: courseId } }, ...(signal ? { signal } : {}) }));
        setCourse(data.course ?? null);
        setLessons([...(data.lessons ?? [])].sort((a, b) => (a.position ?? 0) - (b.position ?? 0)));
        setLoadError(null);
      } catch (e) {
        if (!signal?.aborted) setLoadError(asApiError(e));
      }
    },
    [courseId],
  );

  useEffect(() => {
    const abort = new AbortController();
    void load(abort.signal);
    return () => abort.abort();
  }, [load]);

  /** Runs one write; shows its refusal (e.g. FAILED_PRECONDITION) or a done notice. */
  async function act(work: () => Promise<void>, done: string) {
    setBusy(true);
    setActionError(null);
    setNotice('');
    try {
      await work();
      setNotice(done);
    } catch (e) {
      setActionError(asApiError(e));
    } finally {
      setBusy(false);
    }
  }

  async function transition(kind: Transition) {
    const options = TRANSITIONS[kind];
    if (!(await confirm(options))) return;
    const path = { course_id: courseId };
    await act(async () => {
      const key = actionHeaders(newActionKey());
      const data =
        kind === 'publish'
          ? await call(api.POST('/v1/courses/{course_id}:publish', { params: { path }, body: {}, headers: key }))
          : kind === 'unpublish'
            ? await call(api.POST('/v1/courses/{course_id}:unpublish', { params: { path }, body: {}, headers: key }))
            : kind === 'archive'
              ? await call(api.POST('/v1/courses/{course_id}:archive', { params: { path }, body: {}, headers: key }))
              : await call(api.POST('/v1/courses/{course_id}:restore', { params: { path }, body: {}, headers: key }));
      if (data.course) setCourse(data.course);
    }, options.done);
  }

  async function deleteDraft() {
    const ok = await confirm({ title: 'Delete this draft?', body: 'The course and its lessons are deleted for good.', confirm: 'Delete draft', dangerous: true });
    if (!ok) return;
    await act(async () => {
      await call(api.DELETE('/v1/courses/{course_id}', { params: { path: { course_id: courseId } }, headers: actionHeaders(newActionKey()) }));
      navigate('/studio', { replace: true });
    }, 'Deleted.');
  }

  async function move(index: number, delta: -1 | 1) {
    const moved = moveLesson(lessons, index, delta);
    const lesson = lessons[index];
    if (!moved || !lesson?.id) return;
    await act(async () => {
      await call(
        api.PATCH('/v1/courses/{course_id}/lessons/{lesson_id}', {
          params: { path: { course_id: courseId, lesson_id: lesson.id ?? '' }, query: { updateMask: 'position' } },
          body: { position: moved.position },
        }),
      );
      setLessons(moved.lessons);
      // Keep keyboard focus on the same button of the moved lesson (once re-enabled).
      refocus.current = `move-${delta < 0 ? 'up' : 'down'}-${lesson.id}`;
    }, `“${lesson.title}” moved to position ${moved.position}.`);
  }

  async function removeLesson(lesson: LessonSummary) {
    const ok = await confirm({ title: `Delete “${lesson.title}”?`, body: 'The lesson is removed from the course; learners lose it.', confirm: 'Delete lesson', dangerous: true });
    if (!ok) return;
    await act(async () => {
      await call(api.DELETE('/v1/courses/{course_id}/lessons/{lesson_id}', { params: { path: { course_id: courseId, lesson_id: lesson.id ?? '' } }, headers: actionHeaders(newActionKey()) }));
      await load();
    }, `“${lesson.title}” deleted.`);
  }

  async function editLesson(summary: LessonSummary) {
    await act(async () => {
      const data = await call(api.GET('/v1/courses/{course_id}/lessons/{lesson_id}', { params: { path: { course_id: courseId, lesson_id: summary.id ?? '' } } }));
      if (data.lesson) setEditing({ lesson: data.lesson });
    }, '');
  }

  if (loadError) {
    return (
      <div>
        <PageTitle>Course editor</PageTitle>
        <Alert>{loadError.message}</Alert>
      </div>
    );
  }
  if (!course) return <Loading label="Loading the course…" />;

  const state = course.state ?? 'COURSE_STATE_UNSPECIFIED';
  const archived = state === 'COURSE_STATE_ARCHIVED';
  return (
    <div className="flex flex-col gap-8">
      {dialog}
      <div>
        <p className="mb-2 text-sm">
          <Link to="/studio" className="underline">
            ← My courses
          </Link>
        </p>
        <PageTitle>{course.title ?? 'Course'}</PageTitle>
        <p className="flex flex-wrap items-center gap-3 text-sm text-slate-600 dark:text-slate-400">
          <span className={`rounded px-2 py-0.5 text-xs font-medium ${STATE_BADGE[state]}`}>{STATE_NAMES[state]}</span>
          <span>{course.enrollmentCount ?? 0} enrolled</span>
          {course.publishTime && <span>Published {formatTime(course.publishTime)}</span>}
          <Link to={`/studio/courses/${courseId}/roster`} className="font-medium text-brand-700 underline dark:text-brand-50">
            Roster
          </Link>
          {state === 'COURSE_STATE_PUBLISHED' && course.slug && (
            <Link to={`/courses/${course.slug}`} className="underline">
              View in catalog
            </Link>
          )}
        </p>
      </div>

      <section aria-labelledby="lifecycle" className="flex flex-col gap-3">
        <h2 id="lifecycle" className="text-xl font-semibold">
          Lifecycle
        </h2>
        <div className="flex flex-wrap gap-3">
          {state === 'COURSE_STATE_DRAFT' && (
            <>
              <Button type="button" disabled={busy} onClick={() => void transition('publish')}>
                Publish
              </Button>
              <Button type="button" disabled={busy} className={danger} onClick={() => void deleteDraft()}>
                Delete draft
              </Button>
            </>
          )}
          {state === 'COURSE_STATE_PUBLISHED' && (
            <>
              <Button type="button" disabled={busy} className={secondary} onClick={() => void transition('unpublish')}>
                Unpublish
              </Button>
              <Button type="button" disabled={busy} className={danger} onClick={() => void transition('archive')}>
                Archive
              </Button>
            </>
          )}
          {archived && (
            <Button type="button" disabled={busy} onClick={() => void transition('restore')}>
              Restore
            </Button>
          )}
        </div>
        {notice && <Notice>{notice}</Notice>}
        {actionError && (
          <div role="alert" className="rounded-md border border-red-300 bg-red-50 px-4 py-3 text-red-800 dark:border-red-800 dark:bg-red-950 dark:text-red-200">
            {actionError.code === 'FAILED_PRECONDITION' ? 'Not allowed now: ' : ''}
            {actionError.message}
          </div>
        )}
      </section>

      <section aria-labelledby="lessons" className="flex flex-col gap-3">
        <h2 id="lessons" className="text-xl font-semibold">
          Lessons
        </h2>
        {lessons.length === 0 ? (
          <p>No lesson yet. A course needs at least one to be published.</p>
        ) : (
          <ol aria-label="Lessons in order" className="flex flex-col divide-y divide-slate-200 rounded-lg border border-slate-200 dark:divide-slate-800 dark:border-slate-800">
            {lessons.map((lesson, index) => (
              <li key={lesson.id} className="flex flex-wrap items-center gap-2 px-3 py-2">
                <span className="w-6 text-sm text-slate-600 tabular-nums dark:text-slate-400">{index + 1}.</span>
                <span className="flex min-w-40 flex-1 flex-wrap items-baseline gap-x-2">
                  <span className="font-medium" data-lesson-title>
                    {lesson.title}
                  </span>
                  <span className="text-xs text-slate-600 dark:text-slate-400">{KIND_NAMES[lesson.contentType ?? ''] ?? lesson.contentType}</span>
                </span>
                <span className="ml-auto flex flex-wrap gap-1">
                  <Button type="button" id={`move-up-${lesson.id}`} className={`${secondary} px-2! py-1! text-sm`} disabled={busy || archived || index === 0} onClick={() => void move(index, -1)} aria-label={`Move “${lesson.title}” up`}>
                    ↑ Up
                  </Button>
                  <Button type="button" id={`move-down-${lesson.id}`} className={`${secondary} px-2! py-1! text-sm`} disabled={busy || archived || index === lessons.length - 1} onClick={() => void move(index, 1)} aria-label={`Move “${lesson.title}” down`}>
                    ↓ Down
                  </Button>
                  <Button type="button" className={`${secondary} px-2! py-1! text-sm`} disabled={busy || archived} onClick={() => void editLesson(lesson)} aria-label={`Edit “${lesson.title}”`}>
                    Edit
                  </Button>
                  <Button type="button" className={`${danger} px-2! py-1! text-sm`} disabled={busy || archived} onClick={() => void removeLesson(lesson)} aria-label={`Delete “${lesson.title}”`}>
                    Delete
                  </Button>
                </span>
              </li>
            ))}
          </ol>
        )}
        {editing ? (
          <LessonEditor
            key={editing.lesson?.id ?? 'new'}
            courseId={courseId}
            {...(editing.lesson ? { saved: editing.lesson } : {})}
            onCancel={() => setEditing(null)}
            onDone={(lesson) => {
              setEditing(null);
              setNotice(lesson ? `Lesson “${lesson.title}” saved.` : 'Saved.');
              void load();
            }}
          />
        ) : (
          !archived && (
            <Button type="button" className="self-start" onClick={() => setEditing({})}>
              Add a lesson
            </Button>
          )
        )}
      </section>

      {!archived && <DetailsForm course={course} onSaved={(saved) => setCourse(saved)} />}
    </div>
  );
}

function DetailsForm({ course, onSaved }: { course: Course; onSaved: (course: Course) => void }) {
  const [draft, setDraft] = useState<CourseDraft>(() => courseDraft(course));
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState('');
  const [busy, setBusy] = useState(false);
  const actionKey = useRef(newActionKey());
  const set = (changes: Partial<CourseDraft>) => setDraft((d) => ({ ...d, ...changes }));
  const err = (path: string) => fieldError(error, `course.${path}`, path);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const mask = courseMask(course, draft);
    setError(null);
    setSaved('');
    if (mask.length === 0) {
      setSaved('Nothing changed.');
      return;
    }
    setBusy(true);
    try {
      const data = await call(
        api.PATCH('/v1/courses/{course_id}', {
          params: { path: { course_id: course.id ?? '' }, query: { updateMask: mask.join(',') } },
          body: courseFromDraft(draft),
          headers: actionHeaders(actionKey.current),
        }),
      );
      actionKey.current = newActionKey();
      if (data.course) {
        onSaved(data.course);
        setDraft(courseDraft(data.course));
      }
      setSaved('Details saved.');
    } catch (e) {
      const apiError = asApiError(e);
      if (apiError.status >= 400 && apiError.status < 500) actionKey.current = newActionKey();
      setError(apiError);
    } finally {
      setBusy(false);
    }
  }

  const fields = ['title', 'summary', 'tags', 'level', 'capacity', 'enrollmentOpenTime', 'enrollmentCloseTime'];
  return (
    <section aria-labelledby="details">
      <h2 id="details" className="mb-3 text-xl font-semibold">
        Details
      </h2>
      <form onSubmit={submit} noValidate className="flex max-w-2xl flex-col gap-4">
        <ErrorSummary error={error} shown={fields.flatMap((f) => [f, `course.${f}`])} />
        <Field label="Title" value={draft.title} onChange={(e) => set({ title: e.target.value })} required error={err('title')} />
        <TextArea label="Summary" rows={4} value={draft.summary} onChange={(e) => set({ summary: e.target.value })} error={err('summary')} />
        <Field label="Tags (comma separated)" value={draft.tags} onChange={(e) => set({ tags: e.target.value })} error={err('tags')} />
        <div className="grid gap-4 sm:grid-cols-2">
          <Select label="Level" value={draft.level} onChange={(e) => set({ level: e.target.value as CourseDraft['level'] })}>
            {Object.entries(LEVEL_NAMES).map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </Select>
          <Field label="Capacity (0 = unlimited)" type="number" min={0} value={draft.capacity} onChange={(e) => set({ capacity: e.target.value })} error={err('capacity')} />
          <Field label="Enrollment opens" type="datetime-local" value={draft.enrollmentOpenTime} onChange={(e) => set({ enrollmentOpenTime: e.target.value })} error={err('enrollmentOpenTime')} />
          <Field label="Enrollment closes" type="datetime-local" value={draft.enrollmentCloseTime} onChange={(e) => set({ enrollmentCloseTime: e.target.value })} error={err('enrollmentCloseTime')} />
        </div>
        {saved && <Notice>{saved}</Notice>}
        <Button type="submit" disabled={busy} className="self-start">
          {busy ? 'Saving…' : 'Save details'}
        </Button>
      </form>
    </section>
  );
}
