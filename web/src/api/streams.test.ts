import { describe, expect, it } from 'vitest';
import { Session } from './session';
import { TICKETS_PATH, watchStream } from './streams';

/** A stand-in EventSource: records its URL; the test fires its handlers. */
class FakeSource {
  static made: FakeSource[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: MessageEvent<string>) => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSource.made.push(this);
  }
  close() {
    this.closed = true;
  }
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

function setup(refuseTickets = 0) {
  FakeSource.made = [];
  const tickets: Request[] = [];
  let n = 0;
  const session = new Session({
    fetch: async (request) => {
      tickets.push(request);
      if (refuseTickets-- > 0) return new Response('{}', { status: 503 });
      return new Response(JSON.stringify({ ticket: `t${++n}`, expiresIn: 60 }), { headers: { 'Content-Type': 'application/json' } });
    },
    setTimer: () => 0,
    clearTimer: () => {},
    sleep: async () => {},
    maxReadRetries: 0,
  });
  session.adopt({ accessToken: 'tok', expiresIn: 900 });
  const timers: { fn: () => void; ms: number }[] = [];
  const messages: unknown[] = [];
  const statuses: boolean[] = [];
  const stop = watchStream<{ n: number }>({
    session,
    path: '/v1/users/me/courses/c1/progress:watch',
    onMessage: (m) => messages.push(m),
    onStatus: (live) => statuses.push(live),
    EventSourceImpl: FakeSource as unknown as typeof EventSource,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => {},
  });
  return { tickets, timers, messages, statuses, stop };
}

describe('watchStream', () => {
  it('buys a ticket with the bearer token and opens the stream with it', async () => {
    const s = setup();
    await flush();
    expect(new URL(s.tickets[0]!.url).pathname).toBe(TICKETS_PATH);
    expect(s.tickets[0]!.method).toBe('POST');
    expect(s.tickets[0]!.headers.get('Authorization')).toBe('Bearer tok');
    expect(FakeSource.made[0]!.url).toBe('/v1/users/me/courses/c1/progress:watch?ticket=t1');
    FakeSource.made[0]!.onopen?.();
    FakeSource.made[0]!.onmessage?.({ data: '{"n":1}' } as MessageEvent<string>);
    FakeSource.made[0]!.onmessage?.({ data: 'not json' } as MessageEvent<string>);
    expect(s.messages).toEqual([{ n: 1 }]);
    expect(s.statuses).toEqual([true]);
    s.stop();
    expect(FakeSource.made[0]!.closed).toBe(true);
  });

  it('reconnects after an error with a fresh ticket, backing off', async () => {
    const s = setup();
    await flush();
    const first = FakeSource.made[0]!;
    first.onerror?.();
    first.onerror?.(); // the same failure seen twice schedules one reconnection
    expect(first.closed).toBe(true);
    expect(s.timers.map((t) => t.ms)).toEqual([1000]);
    s.timers[0]!.fn();
    await flush();
    expect(FakeSource.made[1]!.url).toMatch(/\?ticket=t2$/);
    FakeSource.made[1]!.onerror?.();
    expect(s.timers.map((t) => t.ms)).toEqual([1000, 2000]);
    s.timers[1]!.fn();
    await flush();
    // A successful open resets the back-off.
    FakeSource.made[2]!.onopen?.();
    FakeSource.made[2]!.onerror?.();
    expect(s.timers.map((t) => t.ms)).toEqual([1000, 2000, 1000]);
    expect(s.statuses).toEqual([false, false, true, false]);
    s.stop();
  });

  it('retries when the ticket is refused, and stops for good when told to', async () => {
    const s = setup(1);
    await flush();
    expect(FakeSource.made).toHaveLength(0);
    expect(s.timers).toHaveLength(1);
    s.stop();
    s.timers[0]!.fn();
    await flush();
    expect(FakeSource.made).toHaveLength(0);
    expect(s.tickets).toHaveLength(1);
  });
});
