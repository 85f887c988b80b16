/**
 * Building blocks of the instructor studio and the admin screens: labelled select/textarea,
 * a confirmation dialog (native <dialog>: focus trapped, Escape cancels), page-token paging,
 * a keyboard-scrollable table wrapper, and error helpers.
 */
import { useCallback, useEffect, useId, useRef, useState, type ReactNode, type SelectHTMLAttributes, type TextareaHTMLAttributes } from 'react';
import { ApiError } from '../api';
import { Button } from './ui';

export const control =
  'rounded-md border border-slate-300 bg-white px-3 py-2 text-slate-900 dark:border-slate-600 dark:bg-slate-900 dark:text-slate-100 aria-invalid:border-red-600';

export const secondary =
  'bg-white! text-slate-900! border border-slate-300 hover:bg-slate-100! dark:bg-slate-900! dark:text-slate-100! dark:border-slate-600 dark:hover:bg-slate-800!';
export const danger = 'bg-red-700! hover:bg-red-800!';

// One definition, in the service layer; re-exported for the pages that import it from here.
export { asApiError } from '../api';

/** The first violation among the given JSON paths (`course.title`, `title`). */
export function fieldError(error: ApiError | null, ...paths: string[]): string | undefined {
  if (!error) return undefined;
  for (const path of paths) {
    const message = error.field(path);
    if (message) return message;
  }
  return undefined;
}

/** A short local date and time, or an empty string. */
export function formatTime(iso: string | undefined | null): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** The error of a request: its message, and every field violation the form does not show. */
export function ErrorSummary({ error, shown = [] }: { error: ApiError | null; shown?: string[] }) {
  if (!error) return null;
  const others = Object.entries(error.fieldViolations).filter(([path]) => !shown.includes(path));
  const fields = Object.keys(error.fieldViolations).length;
  return (
    <div role="alert" className="rounded-md border border-red-300 bg-red-50 px-4 py-3 text-red-800 dark:border-red-800 dark:bg-red-950 dark:text-red-200">
      <p>{fields > 0 ? 'Please correct the fields marked below.' : error.message}</p>
      {error.retryAfter !== null && <p>Try again in {error.retryAfter} s.</p>}
      {others.length > 0 && (
        <ul className="mt-2 list-disc pl-5 text-sm">
          {others.map(([path, message]) => (
            <li key={path}>
              <code>{path}</code>: {message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Notice({ children }: { children: ReactNode }) {
  return (
    <p role="status" className="rounded-md border border-emerald-300 bg-emerald-50 px-4 py-2 text-emerald-900 dark:border-emerald-800 dark:bg-emerald-950 dark:text-emerald-100">
      {children}
    </p>
  );
}

export function Select({
  label,
  children,
  className = '',
  ...props
}: SelectHTMLAttributes<HTMLSelectElement> & { label: string; children: ReactNode }) {
  return (
    <label className={`flex flex-col gap-1 text-sm font-medium ${className}`}>
      {label}
      <select className={control} {...props}>
        {children}
      </select>
    </label>
  );
}

export function TextArea({
  label,
  error,
  hint,
  mono = false,
  ...props
}: TextareaHTMLAttributes<HTMLTextAreaElement> & { label: string; error?: string | undefined; hint?: string; mono?: boolean }) {
  const id = useId();
  const describedBy = [error ? `${id}-error` : '', hint ? `${id}-hint` : ''].filter(Boolean).join(' ');
  return (
    <div className="flex flex-col gap-1">
      <label htmlFor={id} className="text-sm font-medium">
        {label}
      </label>
      <textarea
        id={id}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy || undefined}
        className={`${control} min-h-24 ${mono ? 'font-mono text-sm' : ''}`}
        {...props}
      />
      {hint && (
        <p id={`${id}-hint`} className="text-xs text-slate-600 dark:text-slate-400">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} className="text-sm text-red-700 dark:text-red-400">
          {error}
        </p>
      )}
    </div>
  );
}

/** A wide table that scrolls sideways on a narrow screen; focusable so keys can scroll it. */
export function TableScroll({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div role="region" aria-label={label} tabIndex={0} className="overflow-x-auto rounded-lg border border-slate-200 dark:border-slate-800">
      {children}
    </div>
  );
}

export const th = 'px-3 py-2 text-left text-xs font-semibold uppercase tracking-wide text-slate-600 dark:text-slate-300';
export const td = 'px-3 py-2 align-top text-sm';

/** Page tokens as a stack: the first page is ''. `reset()` when the filters change. */
export function usePageTokens() {
  const [tokens, setTokens] = useState<string[]>(['']);
  const token = tokens[tokens.length - 1] ?? '';
  return {
    token,
    page: tokens.length,
    canBack: tokens.length > 1,
    back: () => setTokens((t) => (t.length > 1 ? t.slice(0, -1) : t)),
    forward: (next: string) => setTokens((t) => [...t, next]),
    reset: useCallback(() => setTokens(['']), []),
  };
}

export function Pager({ pages, next }: { pages: ReturnType<typeof usePageTokens>; next: string }) {
  return (
    <nav aria-label="Pages" className="mt-4 flex items-center justify-between gap-3">
      <Button type="button" disabled={!pages.canBack} onClick={pages.back}>
        Previous
      </Button>
      <span className="text-sm text-slate-600 dark:text-slate-400">Page {pages.page}</span>
      <Button type="button" disabled={!next} onClick={() => pages.forward(next)}>
        Next
      </Button>
    </nav>
  );
}

export interface ConfirmOptions {
  title: string;
  body: ReactNode;
  confirm: string;
  dangerous?: boolean;
}

/**
 * `const [dialog, confirm] = useConfirm()`: render `dialog`, then `if (await confirm({...}))`.
 * A modal <dialog>: the browser traps focus in it, Escape cancels, focus returns after.
 */
export function useConfirm(): [ReactNode, (options: ConfirmOptions) => Promise<boolean>] {
  const [options, setOptions] = useState<ConfirmOptions | null>(null);
  const resolver = useRef<((ok: boolean) => void) | null>(null);
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();

  useEffect(() => {
    const dialog = ref.current;
    if (options && dialog && !dialog.open) dialog.showModal();
  }, [options]);

  const settle = useCallback((ok: boolean) => {
    ref.current?.close();
    setOptions(null);
    resolver.current?.(ok);
    resolver.current = null;
  }, []);

  const ask = useCallback((next: ConfirmOptions) => {
    resolver.current?.(false);
    setOptions(next);
    return new Promise<boolean>((resolve) => {
      resolver.current = resolve;
    });
  }, []);

  const element = options ? (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        settle(false);
      }}
      className="m-auto w-[min(28rem,calc(100vw-2rem))] rounded-lg border border-slate-200 bg-white p-6 text-slate-900 shadow-xl backdrop:bg-slate-950/50 dark:border-slate-700 dark:bg-slate-900 dark:text-slate-100"
    >
      <h2 id={titleId} className="mb-3 text-lg font-semibold">
        {options.title}
      </h2>
      <div className="mb-6 text-sm">{options.body}</div>
      <div className="flex flex-wrap justify-end gap-3">
        <Button type="button" className={secondary} onClick={() => settle(false)} autoFocus>
          Cancel
        </Button>
        <Button type="button" className={options.dangerous ? danger : ''} onClick={() => settle(true)}>
          {options.confirm}
        </Button>
      </div>
    </dialog>
  ) : null;
  return [element, ask];
}
