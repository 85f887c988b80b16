/**
 * The public catalog: GET /v1/courses with search (q), tag, level, order and page tokens.
 * The filters live in the URL (?q=&tag=&level=&sort=) so a search can be shared and the
 * back button works; page tokens are a stack in memory (they only make sense in sequence).
 */
import { useEffect, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, ApiError, call, type Course, type CourseLevel, type CourseOrder, type ListCoursesQuery } from '../api';
import { Loading } from '../components/Loading';
import { Alert, Button, PageTitle } from '../components/ui';

const PAGE_SIZE = 12;
const LEVELS: { value: CourseLevel | ''; label: string }[] = [
  { value: '', label: 'Any level' },
  { value: 'COURSE_LEVEL_BEGINNER', label: 'Beginner' },
  { value: 'COURSE_LEVEL_INTERMEDIATE', label: 'Intermediate' },
  { value: 'COURSE_LEVEL_ADVANCED', label: 'Advanced' },
];
const ORDERS: { value: CourseOrder; label: string }[] = [
  { value: 'publish_time desc', label: 'Newest' },
  { value: 'enrollment_count desc', label: 'Most popular' },
  { value: 'title', label: 'Title A–Z' },
];
const LEVEL_NAMES: Record<string, string> = Object.fromEntries(LEVELS.map((l) => [l.value, l.label]));

interface Page {
  courses: Course[];
  next: string;
  total: number;
}

export default function CatalogPage() {
  const [params, setParams] = useSearchParams();
  const q = params.get('q') ?? '';
  const tag = params.get('tag') ?? '';
  const level = (params.get('level') ?? '') as CourseLevel | '';
  const sort = (params.get('sort') ?? 'publish_time desc') as CourseOrder;
  const [tokens, setTokens] = useState<string[]>(['']);
  const [page, setPage] = useState<Page | null>(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<ApiError | null>(null);
  const token = tokens[tokens.length - 1] ?? '';

  // New filters start again at the first page.
  useEffect(() => setTokens(['']), [q, tag, level, sort]);

  useEffect(() => {
    const abort = new AbortController();
    const query: ListCoursesQuery = { pageSize: PAGE_SIZE, orderBy: sort };
    if (q) query.q = q;
    if (tag) query.tag = tag;
    if (level) query.level = level;
    if (token) query.pageToken = token;
    setError(null);
    call(api.GET('/v1/courses', { params: { query }, signal: abort.signal }))
      .then((data) => {
        const courses = data.courses ?? [];
        // total_size comes on the first page only.
        if (!token) setTotal(data.totalSize ?? courses.length);
        setPage({ courses, next: data.nextPageToken ?? '', total: data.totalSize ?? 0 });
      })
      .catch((e: unknown) => {
        if (abort.signal.aborted) return;
        setError(e instanceof ApiError ? e : new ApiError('UNKNOWN', String(e), 0));
      });
    return () => abort.abort();
  }, [q, tag, level, sort, token]);

  function update(changes: Record<string, string>) {
    const next = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      if (value) next.set(key, value);
      else next.delete(key);
    }
    setParams(next);
  }

  function search(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    update({ q: String(form.get('q') ?? '').trim(), tag: String(form.get('tag') ?? '').trim() });
  }

  const control =
    'rounded-md border border-slate-300 bg-white px-3 py-2 text-slate-900 dark:border-slate-600 dark:bg-slate-900 dark:text-slate-100';
  return (
    <div>
      <PageTitle>Course catalog</PageTitle>
      <form role="search" onSubmit={search} className="mb-6 grid gap-3 sm:grid-cols-[2fr_1fr_auto]">
        <label className="flex flex-col gap-1 text-sm font-medium">
          Search
          <input name="q" type="search" defaultValue={q} key={`q-${q}`} maxLength={200} placeholder="Title, summary or tag" className={control} />
        </label>
        <label className="flex flex-col gap-1 text-sm font-medium">
          Tag
          <input name="tag" defaultValue={tag} key={`tag-${tag}`} maxLength={30} className={control} />
        </label>
        <Button type="submit" className="self-end">
          Search
        </Button>
      </form>
      <div className="mb-6 flex flex-wrap gap-3">
        <label className="flex items-center gap-2 text-sm font-medium">
          Level
          <select value={level} onChange={(e) => update({ level: e.target.value })} className={control}>
            {LEVELS.map((l) => (
              <option key={l.value} value={l.value}>
                {l.label}
              </option>
            ))}
          </select>
        </label>
        <label className="flex items-center gap-2 text-sm font-medium">
          Sort by
          <select value={sort} onChange={(e) => update({ sort: e.target.value === 'publish_time desc' ? '' : e.target.value })} className={control}>
            {ORDERS.map((o) => (
              <option key={o.value} value={o.value}>
                {o.label}
              </option>
            ))}
          </select>
        </label>
      </div>

      {error && <Alert>{error.message}</Alert>}
      {!page && !error && <Loading label="Loading courses…" />}
      {page && (
        <>
          <p className="mb-4 text-sm text-slate-600 dark:text-slate-400" aria-live="polite">
            {total === 1 ? '1 course' : `${total} courses`}
          </p>
          {page.courses.length === 0 ? (
            <p>No course matches. Try another search.</p>
          ) : (
            <ul className="grid gap-4 sm:grid-cols-2 lg:grid-cols-3" aria-label="Courses">
              {page.courses.map((course) => (
                <CourseCard key={course.id} course={course} />
              ))}
            </ul>
          )}
          <nav aria-label="Pages" className="mt-6 flex justify-between gap-3">
            <Button type="button" disabled={tokens.length <= 1} onClick={() => setTokens((t) => t.slice(0, -1))}>
              Previous
            </Button>
            <Button type="button" disabled={!page.next} onClick={() => setTokens((t) => [...t, page.next])}>
              Next
            </Button>
          </nav>
        </>
      )}
    </div>
  );
}

function CourseCard({ course }: { course: Course }) {
  return (
    <li className="flex flex-col rounded-lg border border-slate-200 p-4 dark:border-slate-800">
      <h2 className="text-lg font-semibold">
        <Link to={`/courses/${course.slug ?? course.id}`} className="hover:underline">
          {course.title}
        </Link>
      </h2>
      {course.instructorName && <p className="text-sm text-slate-600 dark:text-slate-400">by {course.instructorName}</p>}
      {course.summary && <p className="mt-2 line-clamp-3 text-sm">{course.summary}</p>}
      <p className="mt-auto pt-3 text-xs text-slate-600 dark:text-slate-400">
        {LEVEL_NAMES[course.level ?? ''] ?? 'Any level'} · {course.lessonCount ?? 0} lessons ·{' '}
        {course.enrollmentCount ?? 0} enrolled
      </p>
      {course.tags && course.tags.length > 0 && (
        <ul className="mt-2 flex flex-wrap gap-1" aria-label="Tags">
          {course.tags.map((t) => (
            <li key={t} className="rounded bg-slate-100 px-2 py-0.5 text-xs dark:bg-slate-800">
              {t}
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}
