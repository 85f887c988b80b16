/**
 * The audit log for admins, newest first, paged, filtered by the server by actor (user id),
 * action and resource (exact, e.g. users/123). Filters live in the URL
 * (?actor=&action=&resource=).
 */
import { useEffect, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, call, type ApiError, type AuditEvent, type AuditQuery } from '../../api';
import { Loading } from '../../components/Loading';
import { ErrorSummary, Pager, TableScroll, asApiError, control, formatTime, td, th, usePageTokens } from '../../components/staff';
import { Button, PageTitle } from '../../components/ui';

const PAGE_SIZE = 50;
/** The actions the server records (learnflow/commands), offered as suggestions. */
export const AUDIT_ACTIONS = [
  'certificate.issue',
  'comment.create',
  'comment.delete',
  'comment.update',
  'course.archive',
  'course.create',
  'course.delete',
  'course.publish',
  'course.restore',
  'course.unpublish',
  'course.update',
  'enrollment.complete',
  'enrollment.enroll',
  'enrollment.withdraw',
  'lesson.complete',
  'lesson.create',
  'lesson.delete',
  'lesson.update',
  'quiz.attempt',
  'session.create',
  'session.refresh',
  'session.reuse_detected',
  'session.revoke',
  'session.revoke_all',
  'user.change_password',
  'user.disable',
  'user.enable',
  'user.profile_change',
  'user.register',
  'user.role_change',
];

export default function AuditPage() {
  const [params, setParams] = useSearchParams();
  const actor = params.get('actor') ?? '';
  const action = params.get('action') ?? '';
  const resource = params.get('resource') ?? '';
  const pages = usePageTokens();
  const { reset, token } = pages;
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => reset(), [actor, action, resource, reset]);

  useEffect(() => {
    const abort = new AbortController();
    const query: AuditQuery = { pageSize: PAGE_SIZE };
    if (actor) query.actorId = actor;
    if (action) query.action = action;
    if (resource) query.resource = resource;
    if (token) query.pageToken = token;
    setError(null);
    call(api.GET('/v1/auditEvents', { params: { query }, signal: abort.signal }))
      .then((data) => {
        setEvents(data.auditEvents ?? []);
        setNext(data.nextPageToken ?? '');
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(asApiError(e));
      });
    return () => abort.abort();
  }, [actor, action, resource, token]);

  function apply(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const changed = new URLSearchParams();
    for (const key of ['actor', 'action', 'resource']) {
      const value = String(form.get(key) ?? '').trim();
      if (value) changed.set(key, value);
    }
    setParams(changed);
  }

  const shown = events;
  return (
    <div>
      <PageTitle>Audit log</PageTitle>
      <form onSubmit={apply} aria-label="Filter audit events" className="mb-4 grid gap-3 sm:grid-cols-2 lg:grid-cols-[1fr_1fr_1fr_auto]" key={`${actor}|${action}|${resource}`}>
        <label className="flex flex-col gap-1 text-sm font-medium">
          Actor (user id)
          <input name="actor" defaultValue={actor} maxLength={36} className={control} spellCheck={false} />
        </label>
        <label className="flex flex-col gap-1 text-sm font-medium">
          Action
          <input name="action" defaultValue={action} maxLength={100} list="audit-actions" className={control} spellCheck={false} />
          <datalist id="audit-actions">
            {AUDIT_ACTIONS.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
        </label>
        <label className="flex flex-col gap-1 text-sm font-medium">
          Resource
          <input name="resource" defaultValue={resource} maxLength={200} placeholder="users/… or courses/…" className={control} spellCheck={false} />
        </label>
        <div className="flex items-end gap-2">
          <Button type="submit">Filter</Button>
          {(actor || action || resource) && (
            <Link to="/admin/audit" className="px-2 py-2 text-sm underline">
              Clear
            </Link>
          )}
        </div>
      </form>
      <ErrorSummary error={error} />
      {!shown && !error && <Loading label="Loading audit events…" />}
      {shown && shown.length === 0 && <p>No event matches.</p>}
      {shown && shown.length > 0 && (
        <TableScroll label="Audit events table">
          <table className="w-full min-w-[56rem] divide-y divide-slate-200 dark:divide-slate-800">
            <caption className="sr-only">Audit events, newest first</caption>
            <thead className="bg-slate-50 dark:bg-slate-900">
              <tr>
                <th scope="col" className={th}>Time</th>
                <th scope="col" className={th}>Action</th>
                <th scope="col" className={th}>Resource</th>
                <th scope="col" className={th}>Actor</th>
                <th scope="col" className={th}>Outcome</th>
                <th scope="col" className={th}>Client</th>
                <th scope="col" className={th}>Request</th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-200 dark:divide-slate-800">
              {shown.map((event) => (
                <tr key={event.id}>
                  <th scope="row" className={`${td} whitespace-nowrap text-left font-normal`}>
                    {formatTime(event.createTime)}
                  </th>
                  <td className={`${td} font-mono`}>{event.action}</td>
                  <td className={`${td} whitespace-nowrap font-mono text-xs`}>
                    {event.resource?.startsWith('users/') ? (
                      <Link to={`/admin/users/${event.resource.slice('users/'.length)}`} className="underline">
                        {event.resource}
                      </Link>
                    ) : (
                      event.resource
                    )}
                  </td>
                  <td className={`${td} whitespace-nowrap font-mono text-xs`}>
                    {event.actorId ? (
                      <Link to={`/admin/audit?actor=${event.actorId}`} className="underline" aria-label={`Events by actor ${event.actorId}`}>
                        {event.actorId}
                      </Link>
                    ) : (
                      'anonymous'
                    )}
                  </td>
                  <td className={td}>
                    <span className={event.outcome === 'success' ? '' : 'font-medium text-red-700 dark:text-red-400'}>{event.outcome}</span>
                  </td>
                  <td className={`${td} font-mono text-xs`}>{event.clientAddress}</td>
                  <td className={`${td} whitespace-nowrap font-mono text-xs`}>{event.requestId}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      {events && <Pager pages={pages} next={next} />}
    </div>
  );
}
