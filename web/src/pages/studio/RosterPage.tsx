/**
 * A course's roster: every learner with state, enrollment time, progress, best quiz scores,
 * last activity and completion. Sorted by the server (name, progress, last activity; the
 * column headers are sort buttons with aria-sort), paged. Sort lives in the URL (?sort=).
 */
import { useEffect, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { api, call, type ApiError, type RosterEntry, type RosterQuery } from '../../api';
import { Loading } from '../../components/Loading';
import { ErrorSummary, Pager, TableScroll, asApiError, formatTime, td, th, usePageTokens } from '../../components/staff';
import { PageTitle } from '../../components/ui';
import { ENROLLMENT_NAMES } from './labels';

const PAGE_SIZE = 25;
type SortKey = 'display_name' | 'percent_complete' | 'last_activity_time';

/** "percent_complete desc" -> its key and direction; anything else -> by name. */
export function parseSort(value: string | null): { key: SortKey; desc: boolean } {
  const [key, direction] = (value ?? '').split(' ');
  const keys: SortKey[] = ['display_name', 'percent_complete', 'last_activity_time'];
  const found = keys.find((k) => k === key);
  return found ? { key: found, desc: direction === 'desc' } : { key: 'display_name', desc: false };
}

export default function RosterPage() {
  const { courseId = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const sort = parseSort(params.get('sort'));
  const orderBy = `${sort.key}${sort.desc ? ' desc' : ''}`;
  const pages = usePageTokens();
  const { reset, token } = pages;
  const [title, setTitle] = useState('');
  const [lessonTitles, setLessonTitles] = useState<Record<string, string>>({});
  const [entries, setEntries] = useState<RosterEntry[] | null>(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => reset(), [orderBy, reset]);

  useEffect(() => {
    const abort = new AbortController();
    call(api.GET('/v1/courses/{course_id}', { params: { path: { course_id: courseId } }, signal: abort.signal }))
      .then((data) => {
        setTitle(data.course?.title ?? '');
        setLessonTitles(Object.fromEntries((data.lessons ?? []).map((l) => [l.id ?? '', l.title ?? ''])));
      })
      .catch(() => undefined);
    return () => abort.abort();
  }, [courseId]);

  useEffect(() => {
    const abort = new AbortController();
    const query: RosterQuery = { pageSize: PAGE_SIZE, orderBy };
    if (token) query.pageToken = token;
    setError(null);
    call(api.GET('/v1/courses/{course_id}/enrollments', { params: { path: { course_id: courseId }, query }, signal: abort.signal }))
      .then((data) => {
        setEntries(data.enrollments ?? []);
        setNext(data.nextPageToken ?? '');
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(asApiError(e));
      });
    return () => abort.abort();
  }, [courseId, orderBy, token]);

  function sortBy(key: SortKey) {
    // A new column starts in its natural order: names A–Z, progress and activity highest first.
    const desc = sort.key === key ? !sort.desc : key !== 'display_name';
    const changed = new URLSearchParams(params);
    changed.set('sort', `${key}${desc ? ' desc' : ''}`);
    setParams(changed, { replace: true });
  }

  const header = (key: SortKey, label: string) => (
    <th scope="col" className={th} aria-sort={sort.key === key ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
      <button type="button" onClick={() => sortBy(key)} className="inline-flex items-center gap-1 uppercase hover:underline">
        {label}
        <span aria-hidden="true">{sort.key === key ? (sort.desc ? '▼' : '▲') : '↕'}</span>
      </button>
    </th>
  );

  return (
    <div>
      <p className="mb-2 text-sm">
        <Link to={`/studio/courses/${courseId}`} className="underline">
          ← {title || 'Course'}
        </Link>
      </p>
      <PageTitle>Roster</PageTitle>
      <ErrorSummary error={error} />
      {!entries && !error && <Loading label="Loading the roster…" />}
      {entries && entries.length === 0 && <p>No learner has enrolled yet.</p>}
      {entries && entries.length > 0 && (
        <TableScroll label="Roster table">
          <table className="w-full min-w-[56rem] divide-y divide-slate-200 dark:divide-slate-800">
            <caption className="sr-only">
              Learners of {title || 'the course'}, sorted by {sort.key.replace(/_/g, ' ')} {sort.desc ? 'descending' : 'ascending'}
            </caption>
            <thead className="bg-slate-50 dark:bg-slate-900">
              <tr>
                {header('display_name', 'Learner')}
                <th scope="col" className={th}>State</th>
                <th scope="col" className={th}>Enrolled</th>
                {header('percent_complete', 'Progress')}
                <th scope="col" className={th}>Quiz best scores</th>
                {header('last_activity_time', 'Last activity')}
                <th scope="col" className={th}>Completed</th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-200 dark:divide-slate-800">
              {entries.map((entry) => (
                <tr key={entry.userId}>
                  <th scope="row" className={`${td} text-left font-medium`}>
                    {entry.displayName || entry.userId}
                  </th>
                  <td className={td}>{ENROLLMENT_NAMES[entry.state ?? 'ENROLLMENT_STATE_UNSPECIFIED']}</td>
                  <td className={td}>{formatTime(entry.enrollTime)}</td>
                  <td className={td}>
                    <span className="flex items-center gap-2">
                      <progress max={100} value={entry.percentComplete ?? 0} className="h-2 w-20 accent-brand-600" aria-label={`Progress of ${entry.displayName ?? 'learner'}`} />
                      <span className="tabular-nums">{entry.percentComplete ?? 0}%</span>
                    </span>
                  </td>
                  <td className={td}>
                    <QuizScores scores={entry.quizBestScores} titles={lessonTitles} />
                  </td>
                  <td className={td}>{formatTime(entry.lastActivityTime) || '—'}</td>
                  <td className={td}>{formatTime(entry.completeTime) || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      {entries && <Pager pages={pages} next={next} />}
    </div>
  );
}

function QuizScores({ scores, titles }: { scores: RosterEntry['quizBestScores']; titles: Record<string, string> }) {
  const list = Object.entries(scores ?? {});
  if (list.length === 0) return <>—</>;
  return (
    <ul className="flex flex-col gap-0.5">
      {list.map(([lessonId, score], i) => (
        <li key={lessonId}>
          {titles[lessonId] || `Quiz ${i + 1}`}: <span className="tabular-nums">{String(score)}%</span>
        </li>
      ))}
    </ul>
  );
}
