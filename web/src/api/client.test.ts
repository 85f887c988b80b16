import { describe, expect, it } from 'vitest';
import { ApiError, call, createApiClient } from './client';
import { parseRetryAfter, toApiError } from './errors';
import { CONSISTENCY_HEADER, Session } from './session';

const BASE = 'http://app.test';

type Handler = (request: Request) => Response | Promise<Response>;

/** A fake network: records every request, answers with the handler. */
function fakeFetch(handler: Handler) {
  const seen: Request[] = [];
  const fetch = async (request: Request) => {
    seen.push(request.clone());
    return handler(request);
  };
  return { fetch, seen };
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });
}

const grant = (token: string, expiresIn = 900) => ({
  accessToken: token,
  expiresIn,
  tokenType: 'Bearer',
  consistencyToken: '',
});

function client(handler: Handler, extra: ConstructorParameters<typeof Session>[0] = {}) {
  const net = fakeFetch(handler);
  const timers: { fn: () => void; ms: number }[] = [];
  const sleeps: number[] = [];
  let ended = 0;
  const made = createApiClient({
    baseUrl: BASE,
    fetch: net.fetch,
    onSessionEnded: () => ended++,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => {},
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  });
  return { ...made, ...net, timers, sleeps, ended: () => ended };
}

const path = (r: Request) => new URL(r.url).pathname;

describe('access token', () => {
  it('is sent as a bearer token once adopted, and only kept in memory', async () => {
    const c = client(() => json({ user: { id: 'u1' } }));
    await call(c.api.GET('/v1/users/me'));
    expect(c.seen[0]?.headers.get('Authorization')).toBeNull();
    c.session.adopt(grant('tok-1'));
    await call(c.api.GET('/v1/users/me'));
    expect(c.seen[1]?.headers.get('Authorization')).toBe('Bearer tok-1');
    expect(typeof localStorage === 'undefined' || localStorage.length === 0).toBe(true);
  });

  it('is refreshed shortly before it expires', async () => {
    const c = client((r) => (path(r) === '/v1/sessions:refresh' ? json(grant('tok-2')) : json({})));
    c.session.adopt(grant('tok-1', 600));
    expect(c.timers).toHaveLength(1);
    expect(c.timers[0]?.ms).toBe((600 - 30) * 1000);
    c.timers[0]?.fn();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(c.session.token).toBe('tok-2');
    const refresh = c.seen.find((r) => path(r) === '/v1/sessions:refresh');
    expect(await refresh?.json()).toEqual({ refreshTokenDelivery: 'REFRESH_TOKEN_DELIVERY_COOKIE' });
  });
});

describe('proactive refresh', () => {
  it('ends the session when the timed refresh is refused', async () => {
    const c = client((r) =>
      path(r) === '/v1/sessions:refresh' ? json({ code: 16, message: 'over' }, 401) : json({}),
    );
    c.session.adopt(grant('tok-1', 60));
    c.timers[0]?.fn();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(c.session.token).toBeNull();
    expect(c.ended()).toBe(1);
  });

  it('keeps the session when offline (the refresh could not be sent)', async () => {
    const c = client((r) => {
      if (path(r) === '/v1/sessions:refresh') throw new TypeError('Failed to fetch');
      return json({});
    });
    c.session.adopt(grant('tok-1', 60));
    expect(await c.session.refresh()).toBe(false);
    expect(c.session.token).toBe('tok-1');
    expect(c.ended()).toBe(0);
  });
});

describe('401 and refresh', () => {
  it('refreshes once for concurrent 401s and retries each request with the new token', async () => {
    let refreshes = 0;
    const c = client(async (r) => {
      if (path(r) === '/v1/sessions:refresh') {
        refreshes++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        return json(grant('fresh'));
      }
      return r.headers.get('Authorization') === 'Bearer fresh'
        ? json({ user: { id: 'u1' } })
        : json({ code: 16, message: 'expired', details: [] }, 401);
    });
    c.session.adopt(grant('stale'));
    const results = await Promise.all([
      call(c.api.GET('/v1/users/me')),
      call(c.api.GET('/v1/users/me')),
      call(c.api.GET('/v1/courses')),
    ]);
    expect(refreshes).toBe(1);
    expect(results[0]).toEqual({ user: { id: 'u1' } });
    expect(c.ended()).toBe(0);
  });

  it('retries a write with its body intact', async () => {
    const c = client(async (r) => {
      if (path(r) === '/v1/sessions:refresh') return json(grant('fresh'));
      if (r.headers.get('Authorization') !== 'Bearer fresh') return json({ code: 16, message: 'x' }, 401);
      return json({ course: await r.json() });
    });
    c.session.adopt(grant('stale'));
    const out = await call(c.api.POST('/v1/courses', { body: { course: { title: 'T' } } as never }));
    expect(out).toEqual({ course: { course: { title: 'T' } } });
    const posts = c.seen.filter((r) => path(r) === '/v1/courses');
    expect(posts).toHaveLength(2);
    // The same user action: the retry carries the same Idempotency-Key.
    expect(posts[0]?.headers.get('Idempotency-Key')).toBeTruthy();
    expect(posts[1]?.headers.get('Idempotency-Key')).toBe(posts[0]?.headers.get('Idempotency-Key'));
  });

  it('ends the session when the refresh is refused', async () => {
    const c = client((r) =>
      path(r) === '/v1/sessions:refresh'
        ? json({ code: 16, message: 'session over' }, 401)
        : json({ code: 16, message: 'expired' }, 401),
    );
    c.session.adopt(grant('stale'));
    await expect(call(c.api.GET('/v1/users/me'))).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(c.ended()).toBe(1);
    expect(c.session.token).toBeNull();
  });

  it('does not refresh for a 401 from the session endpoints themselves', async () => {
    const c = client(() => json({ code: 16, message: 'wrong password' }, 401));
    await expect(
      call(c.api.POST('/v1/sessions', { body: { email: 'a@b.c', password: 'x' } })),
    ).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: 'wrong password' });
    expect(c.seen).toHaveLength(1);
  });
});

describe('consistency token', () => {
  it('carries the last write token (body field) on the following reads', async () => {
    const c = client((r) =>
      r.method === 'POST' ? json({ course: { id: 'c1' }, consistencyToken: 'ct-7' }) : json({}),
    );
    await call(c.api.GET('/v1/courses'));
    expect(c.seen[0]?.headers.get(CONSISTENCY_HEADER)).toBeNull();
    await call(c.api.POST('/v1/courses', { body: { course: { title: 'T' } } as never }));
    await call(c.api.GET('/v1/courses'));
    expect(c.seen[2]?.headers.get(CONSISTENCY_HEADER)).toBe('ct-7');
  });

  it('takes the X-Consistency-Token response header too', async () => {
    const c = client((r) =>
      r.method === 'POST' ? json({}, 200, { 'X-Consistency-Token': 'hdr-1' }) : json({}),
    );
    await call(c.api.POST('/v1/courses', { body: {} as never }));
    await call(c.api.GET('/v1/courses'));
    expect(c.seen[1]?.headers.get(CONSISTENCY_HEADER)).toBe('hdr-1');
  });

  it('is forgotten with the session', async () => {
    const c = client(() => json({ consistencyToken: 'ct-1' }));
    await call(c.api.POST('/v1/courses', { body: {} as never }));
    c.session.adopt(grant('t'));
    c.session.clear();
    await call(c.api.GET('/v1/courses'));
    expect(c.seen[1]?.headers.get(CONSISTENCY_HEADER)).toBeNull();
  });
});

describe('errors', () => {
  it('maps a google.rpc.Status with field violations to an ApiError', async () => {
    const c = client(() =>
      json(
        {
          code: 3,
          message: 'invalid registration',
          details: [
            { '@type': 'type.googleapis.com/google.rpc.RequestInfo', requestId: 'r1' },
            {
              '@type': 'type.googleapis.com/google.rpc.BadRequest',
              fieldViolations: [
                { field: 'email', description: 'is not an email address' },
                { field: 'displayName', description: 'is required' },
                { field: 'email', description: 'is taken' },
              ],
            },
          ],
        },
        400,
      ),
    );
    const error = await call(
      c.api.POST('/v1/users:register', { body: { email: 'x', password: 'p', displayName: '' } }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    const e = error as ApiError;
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.status).toBe(400);
    expect(e.message).toBe('invalid registration');
    expect(e.field('displayName')).toBe('is required');
    expect(e.fieldViolations.email).toBe('is not an email address; is taken');
  });

  it('falls back on the HTTP status when the body is not a Status', () => {
    const e = toApiError(undefined, new Response('<html>', { status: 503, statusText: 'Down' }));
    expect(e.code).toBe('UNAVAILABLE');
    expect(e.status).toBe(503);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('7')).toBe(7);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter('soon')).toBeNull();
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10);
  });

  it('turns a network failure into UNAVAILABLE', async () => {
    const c = client(() => {
      throw new TypeError('Failed to fetch');
    });
    await expect(call(c.api.GET('/v1/courses'))).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 0 });
  });
});

describe('Retry-After', () => {
  it('retries a read answered 429 after the time asked, a bounded number of times', async () => {
    const c = client(() => json({ code: 8, message: 'slow down' }, 429, { 'Retry-After': '2' }));
    const e = (await call(c.api.GET('/v1/courses')).catch((x: unknown) => x)) as ApiError;
    expect(c.seen).toHaveLength(3);
    expect(c.sleeps).toEqual([2000, 2000]);
    expect(e.code).toBe('RESOURCE_EXHAUSTED');
    expect(e.retryAfter).toBe(2);
  });

  it('succeeds when a retry does', async () => {
    let n = 0;
    const c = client(() => (n++ === 0 ? json({ code: 14, message: 'busy' }, 503, { 'Retry-After': '1' }) : json({ courses: [] })));
    expect(await call(c.api.GET('/v1/courses'))).toEqual({ courses: [] });
    expect(c.sleeps).toEqual([1000]);
  });

  it('never retries a write', async () => {
    const c = client(() => json({ code: 8, message: 'slow down' }, 429, { 'Retry-After': '1' }));
    await expect(call(c.api.POST('/v1/courses', { body: {} as never }))).rejects.toMatchObject({ retryAfter: 1 });
    expect(c.seen).toHaveLength(1);
  });

  it('gives up at once when asked to wait too long', async () => {
    const c = client(() => json({ code: 8, message: 'later' }, 429, { 'Retry-After': '3600' }));
    await expect(call(c.api.GET('/v1/courses'))).rejects.toMatchObject({ retryAfter: 3600 });
    expect(c.seen).toHaveLength(1);
  });
});

describe('Idempotency-Key', () => {
  it('is sent on writes that take one, and never on those that refuse it', async () => {
    const c = client(() => json({}));
    await call(c.api.POST('/v1/users:register', { body: { email: 'a', password: 'b', displayName: 'c' } }));
    await call(c.api.POST('/v1/sessions', { body: { email: 'a', password: 'b' }, headers: { 'Idempotency-Key': 'k' } }));
    await call(c.api.GET('/v1/courses'));
    expect(c.seen[0]?.headers.get('Idempotency-Key')).toMatch(/^[0-9a-f-]{36}$/);
    expect(c.seen[1]?.headers.get('Idempotency-Key')).toBeNull();
    expect(c.seen[2]?.headers.get('Idempotency-Key')).toBeNull();
  });

  it('keeps the key of the user action', async () => {
    const c = client(() => json({}));
    const headers = { 'Idempotency-Key': 'action-1' };
    await call(c.api.POST('/v1/users:register', { body: { email: 'a', password: 'b', displayName: 'c' }, headers }));
    await call(c.api.POST('/v1/users:register', { body: { email: 'a', password: 'b', displayName: 'c' }, headers }));
    expect(c.seen.map((r) => r.headers.get('Idempotency-Key'))).toEqual(['action-1', 'action-1']);
  });
});
