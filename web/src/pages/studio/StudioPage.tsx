/**
 * The instructor's courses (every state, drafts included), filtered by state and paged, and
 * the form that creates a new draft. The state filter lives in the URL (?state=).
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { actionHeaders, api, call, newActionKey, type ApiError, type AuthoredCoursesQuery, type Course, type CourseState } from '../../api';
import { Loading } from '../../components/Loading';
import { ErrorSummary, Pager, Select, TableScroll, asApiError, fieldError, formatTime, td, th, usePageTokens } from '../../components/staff';
import { Button, Field, PageTitle } from '../../components/ui';
import { STATE_BADGE, STATE_NAMES } from './labels';

const PAGE_SIZE = 20;
const FILTERS: { value: CourseState | ''; label: string }[] = [
  { value: '', label: 'All states' },
  { value: 'COURSE_STATE_DRAFT', label: 'Drafts' },
  { value: 'COURSE_STATE_PUBLISHED', label: 'Published' },
  { value: 'COURSE_STATE_ARCHIVED', label: 'Archived' },
];

export default function StudioPage() {
  const [params, setParams] = useSearchParams();
  const state = (params.get('state') ?? '') as CourseState | '';
  const pages = usePageTokens();
  const { reset, token } = pages;
  const [courses, setCourses] = useState<Course[] | null>(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => reset(), [state, reset]);

  useEffect(() => {
    const abort = new AbortController();
    const query: AuthoredCoursesQuery = { pageSize: PAGE_SIZE };
    if (state) query.state = state;
    if (token) query.pageToken = token;
    setError(null);
    call(api.GET('/v1/users/me/authoredCourses', { params: { query }, signal: abort.signal }))
      .then((data) => {
        setCourses(data.courses ?? []);
        setNext(data.nextPageToken ?? '');
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(asApiError(e));
      });
    return () => abort.abort();
  }, [state, token]);

  return (
    <div>
      <PageTitle>My courses</PageTitle>
      <NewCourse />
      <div className="mb-4 flex flex-wrap items-end gap-3">
        <Select
          label="Show"
          value={state}
          onChange={(e) => {
            const changed = new URLSearchParams(params);
            if (e.target.value) changed.set('state', e.target.value);
            else changed.delete('state');
            setParams(changed);
          }}
        >
          {FILTERS.map((f) => (
            <option key={f.value} value={f.value}>
              {f.label}
            </option>
          ))}
        </Select>
      </div>
      <ErrorSummary error={error} />
      {!courses && !error && <Loading label="Loading your courses…" />}
      {courses && courses.length === 0 && <p>No course here yet.</p>}
      {courses && courses.length > 0 && (
        <TableScroll label="My courses">
          <table className="w-full min-w-[40rem] divide-y divide-slate-200 dark:divide-slate-800">
            <caption className="sr-only">My courses{state ? `: ${STATE_NAMES[state]}` : ''}</caption>
            <thead className="bg-slate-50 dark:bg-slate-900">
              <tr>
                <th scope="col" className={th}>Title</th>
                <th scope="col" className={th}>State</th>
                <th scope="col" className={th}>Lessons</th>
                <th scope="col" className={th}>Enrolled</th>
                <th scope="col" className={th}>Updated</th>
                <th scope="col" className={th}>
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-200 dark:divide-slate-800">
              {courses.map((course) => (
                <tr key={course.id}>
                  <th scope="row" className={`${td} text-left font-medium`}>
                    <Link to={`/studio/courses/${course.id}`} className="text-brand-700 underline dark:text-brand-50">
                      {course.title}
                    </Link>
                  </th>
                  <td className={td}>
                    <span className={`rounded px-2 py-0.5 text-xs font-medium ${STATE_BADGE[course.state ?? 'COURSE_STATE_UNSPECIFIED']}`}>
                      {STATE_NAMES[course.state ?? 'COURSE_STATE_UNSPECIFIED']}
                    </span>
                  </td>
                  <td className={td}>{course.lessonCount ?? 0}</td>
                  <td className={td}>{course.enrollmentCount ?? 0}</td>
                  <td className={td}>{formatTime(course.updateTime ?? course.createTime)}</td>
                  <td className={td}>
                    <Link to={`/studio/courses/${course.id}/roster`} className="underline" aria-label={`Roster of ${course.title}`}>
                      Roster
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      {courses && <Pager pages={pages} next={next} />}
    </div>
  );
}

/** Creating a course: a title is enough; the editor opens on the new draft. */
function NewCourse() {
  const navigate = useNavigate();
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const actionKey = useRef(newActionKey());

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const data = await call(
        api.POST('/v1/courses', {
          body: { course: { title: String(form.get('title')).trim(), summary: String(form.get('summary') ?? '').trim() } },
          headers: actionHeaders(actionKey.current),
        }),
      );
      actionKey.current = newActionKey();
      if (data.course?.id) navigate(`/studio/courses/${data.course.id}`);
    } catch (e) {
      const apiError = asApiError(e);
      if (apiError.status >= 400 && apiError.status < 500) actionKey.current = newActionKey();
      setError(apiError);
    } finally {
      setBusy(false);
    }
  }

  if (!open) {
    return (
      <Button type="button" className="mb-6" onClick={() => setOpen(true)}>
        New course
      </Button>
    );
  }
  return (
    <form onSubmit={submit} noValidate aria-labelledby="new-course" className="mb-8 flex max-w-xl flex-col gap-4 rounded-lg border border-slate-200 p-4 dark:border-slate-800">
      <h2 id="new-course" className="text-lg font-semibold">
        New course
      </h2>
      <ErrorSummary error={error} shown={['course.title', 'course.summary']} />
      <Field label="Title" name="title" required autoFocus error={fieldError(error, 'course.title', 'title')} />
      <Field label="Summary" name="summary" error={fieldError(error, 'course.summary', 'summary')} />
      <div className="flex gap-3">
        <Button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create draft'}
        </Button>
        <Button type="button" className="bg-white! text-slate-900! border border-slate-300 dark:bg-slate-900! dark:text-slate-100!" onClick={() => setOpen(false)}>
          Cancel
        </Button>
      </div>
    </form>
  );
}
