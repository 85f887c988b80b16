/**
 * A lesson's discussion: top-level comments with their replies (one level, as `parentId`
 * allows), post, reply, edit and delete one's own; course staff (the owner, admins) may delete
 * anyone's (moderation). The server decides in the end: a refused action shows its message.
 */
import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from 'react';
import { actionHeaders, api, ApiError, call, newActionKey, type Comment } from '../../api';
import { Alert, Button } from '../../components/ui';
import { asApiError, control, secondaryButton } from './common';

interface Props {
  courseId: string;
  lessonId: string;
  userId: string | undefined;
  /** The course owner or an admin: may delete others' comments. */
  moderator: boolean;
}

export function Comments({ courseId, lessonId, userId, moderator }: Props) {
  const [comments, setComments] = useState<Comment[] | null>(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const path = { course_id: courseId, lesson_id: lessonId };

  const load = useCallback(
    async (pageToken = '') => {
      try {
        const query = pageToken ? { pageSize: 50, pageToken } : { pageSize: 50 };
        const data = await call(api.GET('/v1/courses/{course_id}/lessons/{lesson_id}/comments', { params: { path: { course_id: courseId, lesson_id: lessonId }, query } }));
        setComments((c) => (pageToken ? [...(c ?? []), ...(data.comments ?? [])] : (data.comments ?? [])));
        setNext(data.nextPageToken ?? '');
        setError(null);
      } catch (e) {
        setError(asApiError(e));
      }
    },
    [courseId, lessonId],
  );

  useEffect(() => {
    setComments(null);
    void load();
  }, [load]);

  const top = (comments ?? []).filter((c) => !c.parentId);
  const replies = (id: string | undefined) => (comments ?? []).filter((c) => c.parentId && c.parentId === id);

  return (
    <section aria-labelledby="comments-title" className="mt-12 border-t border-slate-200 pt-8 dark:border-slate-800">
      <h2 id="comments-title" className="mb-4 text-xl font-semibold">
        Discussion
      </h2>
      <CommentForm label="Add a comment" submitLabel="Post comment" onSubmit={async (body, key) => {
        await call(api.POST('/v1/courses/{course_id}/lessons/{lesson_id}/comments', { params: { path }, body: { body }, headers: actionHeaders(key) }));
        await load();
      }} />
      {error && <Alert>{error.message}</Alert>}
      {comments && top.length === 0 && <p className="mt-4 text-slate-600 dark:text-slate-400">No comments yet.</p>}
      {top.length > 0 && (
        <ul className="mt-6 flex flex-col gap-4" aria-label="Comments">
          {top.map((c) => (
            <CommentItem key={c.id} comment={c} path={path} userId={userId} moderator={moderator} onChange={() => void load()}>
              {replies(c.id).length > 0 && (
                <ul className="mt-3 flex flex-col gap-3 border-l-2 border-slate-200 pl-4 dark:border-slate-800" aria-label="Replies">
                  {replies(c.id).map((r) => (
                    <CommentItem key={r.id} comment={r} path={path} userId={userId} moderator={moderator} onChange={() => void load()} />
                  ))}
                </ul>
              )}
            </CommentItem>
          ))}
        </ul>
      )}
      {next && (
        <button type="button" className={`${secondaryButton} mt-4`} onClick={() => void load(next)}>
          More comments
        </button>
      )}
    </section>
  );
}

function CommentForm({
  label,
  submitLabel,
  initial = '',
  onSubmit,
  onCancel,
}: {
  label: string;
  submitLabel: string;
  initial?: string;
  onSubmit: (body: string, actionKey: string) => Promise<void>;
  onCancel?: () => void;
}) {
  const id = useId();
  const [body, setBody] = useState(initial);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const key = useRef(newActionKey());

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!body.trim()) return;
    setBusy(true);
    setError(null);
    try {
      await onSubmit(body.trim(), key.current);
      key.current = newActionKey();
      setBody('');
    } catch (e) {
      const err = asApiError(e);
      if (err.status >= 400 && err.status < 500) key.current = newActionKey();
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const fieldError = error?.field('body');
  return (
    <form onSubmit={(e) => void submit(e)} className="flex flex-col gap-2">
      <label htmlFor={id} className="text-sm font-medium">
        {label}
      </label>
      <textarea
        id={id}
        value={body}
        onChange={(e) => setBody(e.target.value)}
        required
        maxLength={10000}
        rows={3}
        aria-invalid={fieldError ? true : undefined}
        aria-describedby={fieldError ? `${id}-error` : undefined}
        className={control}
      />
      {fieldError && (
        <p id={`${id}-error`} className="text-sm text-red-700 dark:text-red-400">
          {fieldError}
        </p>
      )}
      {error && !fieldError && <Alert>{error.message}</Alert>}
      <div className="flex gap-2">
        <Button type="submit" disabled={busy || !body.trim()}>
          {submitLabel}
        </Button>
        {onCancel && (
          <button type="button" className={secondaryButton} onClick={onCancel}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}

function CommentItem({
  comment,
  path,
  userId,
  moderator,
  onChange,
  children,
}: {
  comment: Comment;
  path: { course_id: string; lesson_id: string };
  userId: string | undefined;
  moderator: boolean;
  onChange: () => void;
  children?: React.ReactNode;
}) {
  const [mode, setMode] = useState<'view' | 'edit' | 'reply'>('view');
  const [error, setError] = useState<ApiError | null>(null);
  const mine = !!userId && comment.authorId === userId;
  const id = comment.id ?? '';
  const edited = comment.updateTime && comment.createTime && comment.updateTime !== comment.createTime;

  async function remove() {
    if (!window.confirm(mine ? 'Delete your comment?' : `Delete ${comment.authorName ?? 'this'}'s comment?`)) return;
    try {
      await call(api.DELETE('/v1/courses/{course_id}/lessons/{lesson_id}/comments/{comment_id}', { params: { path: { ...path, comment_id: id } } }));
      onChange();
    } catch (e) {
      setError(asApiError(e));
    }
  }

  return (
    <li className="rounded-lg border border-slate-200 p-4 dark:border-slate-800">
      <p className="text-sm">
        <span className="font-semibold">{comment.deleted ? 'Deleted' : (comment.authorName ?? 'Someone')}</span>
        {comment.createTime && (
          <span className="text-slate-600 dark:text-slate-400">
            {' · '}
            <time dateTime={comment.createTime}>{new Date(comment.createTime).toLocaleString()}</time>
            {edited && !comment.deleted ? ' · edited' : ''}
          </span>
        )}
      </p>
      {mode === 'edit' ? (
        <div className="mt-2">
          <CommentForm
            label="Edit your comment"
            submitLabel="Save"
            initial={comment.body ?? ''}
            onCancel={() => setMode('view')}
            onSubmit={async (body, key) => {
              await call(
                api.PATCH('/v1/courses/{course_id}/lessons/{lesson_id}/comments/{comment_id}', {
                  params: { path: { ...path, comment_id: id }, query: { updateMask: 'body' } },
                  body: { body },
                  headers: actionHeaders(key),
                }),
              );
              setMode('view');
              onChange();
            }}
          />
        </div>
      ) : (
        <p className={`mt-1 whitespace-pre-wrap break-words ${comment.deleted ? 'italic text-slate-600 dark:text-slate-400' : ''}`}>
          {comment.deleted ? 'This comment was deleted.' : comment.body}
        </p>
      )}
      {!comment.deleted && mode === 'view' && (
        <div className="mt-2 flex flex-wrap gap-3 text-sm">
          {!comment.parentId && (
            <button type="button" className="underline" onClick={() => setMode('reply')} aria-label={`Reply to ${comment.authorName ?? 'comment'}`}>
              Reply
            </button>
          )}
          {mine && (
            <button type="button" className="underline" onClick={() => setMode('edit')} aria-label="Edit your comment">
              Edit
            </button>
          )}
          {(mine || moderator) && (
            <button type="button" className="text-red-700 underline dark:text-red-400" onClick={() => void remove()} aria-label={mine ? 'Delete your comment' : `Delete ${comment.authorName ?? 'this'}'s comment`}>
              Delete
            </button>
          )}
        </div>
      )}
      {error && <Alert>{error.message}</Alert>}
      {mode === 'reply' && (
        <div className="mt-3">
          <CommentForm
            label={`Reply to ${comment.authorName ?? 'this comment'}`}
            submitLabel="Post reply"
            onCancel={() => setMode('view')}
            onSubmit={async (body, key) => {
              await call(api.POST('/v1/courses/{course_id}/lessons/{lesson_id}/comments', { params: { path }, body: { body, parentId: id }, headers: actionHeaders(key) }));
              setMode('view');
              onChange();
            }}
          />
        </div>
      )}
      {children}
    </li>
  );
}
