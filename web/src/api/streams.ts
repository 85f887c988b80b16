/**
 * Server streams for the browser. An EventSource cannot send `Authorization`, so the page first
 * trades its bearer token for a short-lived, single-use ticket (`POST /-/stream-tickets`,
 * gateway/tickets.py) and opens the stream with `?ticket=`. A ticket opens one connection only:
 * EventSource's own reconnection would reuse a spent ticket, so on an error the stream is
 * closed and opened again with a fresh ticket, after a growing pause.
 */
import type { Session } from './session';

export const TICKETS_PATH = '/-/stream-tickets';

/** A ticket for one stream connection, bought with the session's bearer token. */
export async function streamTicket(session: Session): Promise<string> {
  const response = await session.fetch(
    new Request(new URL(TICKETS_PATH, globalThis.location?.origin ?? 'http://localhost'), {
      method: 'POST',
      credentials: 'same-origin',
    }),
  );
  if (!response.ok) throw new Error(`stream ticket refused (${response.status})`);
  const body = (await response.json()) as { ticket?: unknown };
  if (typeof body.ticket !== 'string' || !body.ticket) throw new Error('stream ticket missing');
  return body.ticket;
}

export interface StreamOptions<T> {
  session: Session;
  /** The stream's path, without the ticket. */
  path: string;
  onMessage: (data: T) => void;
  /** Connected (true) or waiting to reconnect (false). */
  onStatus?: (live: boolean) => void;
  /** For tests: the EventSource constructor and the timer. */
  EventSourceImpl?: typeof EventSource;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

/** The pause before reconnection attempt `n` (0-based): 1 s, 2 s, 4 s … at most 30 s. */
export function backoffMs(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, attempt));
}

/** Opens the stream and keeps it open until the returned function is called. */
export function watchStream<T>(options: StreamOptions<T>): () => void {
  const Source = options.EventSourceImpl ?? globalThis.EventSource;
  const setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
  const clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  let source: EventSource | null = null;
  let timer: unknown = null;
  let attempt = 0;
  let stopped = false;

  const retry = () => {
    options.onStatus?.(false);
    if (stopped) return;
    timer = setTimer(() => {
      timer = null;
      if (!stopped) void connect();
    }, backoffMs(attempt++));
  };

  const connect = async () => {
    let ticket: string;
    try {
      ticket = await streamTicket(options.session);
    } catch {
      retry();
      return;
    }
    if (stopped) return;
    const sep = options.path.includes('?') ? '&' : '?';
    const es = new Source(`${options.path}${sep}ticket=${encodeURIComponent(ticket)}`);
    source = es;
    es.onopen = () => {
      attempt = 0;
      options.onStatus?.(true);
    };
    es.onmessage = (event: MessageEvent<string>) => {
      try {
        options.onMessage(JSON.parse(event.data) as T);
      } catch {
        // A malformed event is skipped; the next one carries the whole state again.
      }
    };
    // Both a dropped connection and the gateway's `event: error` (the stream ended in a
    // failure) end this connection; a fresh ticket opens the next.
    // (`onerror` sees both: the named event has the same type.)
    let failed = false;
    es.onerror = () => {
      if (failed) return;
      failed = true;
      es.close();
      if (source === es) source = null;
      retry();
    };
  };

  void connect();
  return () => {
    stopped = true;
    if (timer !== null) clearTimer(timer);
    source?.close();
    source = null;
  };
}
