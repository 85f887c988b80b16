/**
 * The transport under the typed client: one `fetch` that every API call goes through.
 *
 * - The access token lives only in this object's memory (never localStorage/sessionStorage):
 *   a page reload restores it with a refresh, whose token is an HttpOnly cookie JS never sees.
 * - The consistency token of the last write is sent as `X-Consistency-Token` on the following
 *   requests, so a read after the user's own write waits until it shows that write.
 * - A 401 triggers ONE refresh, shared by every request that got a 401 meanwhile
 *   (single-flight), then the request is sent again; if the refresh fails the session is over.
 * - Idempotent reads answered 429/503 are retried after `Retry-After` (bounded).
 */

export const SESSIONS_PATH = '/v1/sessions';
export const REFRESH_PATH = '/v1/sessions:refresh';
export const REVOKE_PATH = '/v1/sessions:revoke';
export const COOKIE_DELIVERY = 'REFRESH_TOKEN_DELIVERY_COOKIE';
export const CONSISTENCY_HEADER = 'X-Consistency-Token';

/** What the session endpoints answer (no refresh token: that one is a cookie). */
export interface SessionGrant {
  accessToken: string;
  /** Seconds the access token is valid for. */
  expiresIn: number;
  tokenType?: string;
  consistencyToken?: string;
}

export interface SessionOptions {
  /** The real network call; tests pass a fake. */
  fetch?: (request: Request) => Promise<Response>;
  /** Called once when the session is over (refresh refused): go to the login page. */
  onSessionEnded?: () => void;
  /** Called whenever the access token changes (null: signed out). */
  onTokenChange?: (token: string | null) => void;
  /** Refresh this many seconds before the access token expires. */
  refreshLeadSeconds?: number;
  /** At most this many retries of a read answered 429/503. */
  maxReadRetries?: number;
  /** Longest wait for one retry, in seconds, whatever Retry-After says. */
  maxRetryWaitSeconds?: number;
  sleep?: (ms: number) => Promise<void>;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);
const RETRYABLE = new Set([429, 503]);

export class Session {
  private accessToken: string | null = null;
  private consistencyToken: string | null = null;
  private refreshing: Promise<boolean> | null = null;
  private timer: unknown = null;
  private readonly send: (request: Request) => Promise<Response>;
  private readonly options: Required<Omit<SessionOptions, 'fetch'>>;

  constructor(options: SessionOptions = {}) {
    this.send = options.fetch ?? ((request) => globalThis.fetch(request));
    this.options = {
      onSessionEnded: options.onSessionEnded ?? (() => {}),
      onTokenChange: options.onTokenChange ?? (() => {}),
      refreshLeadSeconds: options.refreshLeadSeconds ?? 30,
      maxReadRetries: options.maxReadRetries ?? 2,
      maxRetryWaitSeconds: options.maxRetryWaitSeconds ?? 10,
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      setTimer: options.setTimer ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimer:
        options.clearTimer ?? ((handle) => clearTimeout(handle as ReturnType<typeof setTimeout>)),
    };
  }

  get token(): string | null {
    return this.accessToken;
  }

  get consistency(): string | null {
    return this.consistencyToken;
  }

  get signedIn(): boolean {
    return this.accessToken !== null;
  }

  /** Takes the tokens of a login or refresh answer and schedules the next refresh. */
  adopt(grant: SessionGrant): void {
    this.accessToken = grant.accessToken;
    if (grant.consistencyToken) this.consistencyToken = grant.consistencyToken;
    this.options.onTokenChange(grant.accessToken);
    this.schedule(grant.expiresIn);
  }

  /** Forgets the session locally (after a logout, or when it ended). */
  clear(): void {
    if (this.timer !== null) this.options.clearTimer(this.timer);
    this.timer = null;
    const had = this.accessToken !== null;
    this.accessToken = null;
    this.consistencyToken = null;
    if (had) this.options.onTokenChange(null);
  }

  /**
   * Asks for a new access token with the refresh cookie. Concurrent callers share one request.
   * Resolves true when the session goes on, false when it is over (the local state is cleared).
   */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    let response: Response;
    try {
      response = await this.send(
        new Request(new URL(REFRESH_PATH, baseOrigin()), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ refreshTokenDelivery: COOKIE_DELIVERY }),
          credentials: 'same-origin',
        }),
      );
    } catch {
      // Offline is not "signed out": keep the token, a later call will try again.
      return false;
    }
    if (!response.ok) {
      this.clear();
      return false;
    }
    const grant = (await response.json()) as SessionGrant;
    this.adopt(grant);
    return true;
  }

  private schedule(expiresIn: number): void {
    if (this.timer !== null) this.options.clearTimer(this.timer);
    this.timer = null;
    if (!Number.isFinite(expiresIn) || expiresIn <= 0) return;
    const lead = Math.min(this.options.refreshLeadSeconds, expiresIn / 2);
    this.timer = this.options.setTimer(() => {
      this.timer = null;
      void this.refresh().then((ok) => {
        if (!ok && !this.signedIn) this.options.onSessionEnded();
      });
    }, (expiresIn - lead) * 1000);
  }

  /** The `fetch` handed to openapi-fetch: every API request passes through here. */
  fetch = async (request: Request): Promise<Response> => {
    // Keep an untouched copy: a request body can be read only once, and we may send twice.
    const original = request.clone();
    const isSessionCall = new URL(request.url).pathname.startsWith(SESSIONS_PATH);
    let response = await this.sendWithRetries(this.decorate(request));
    if (response.status === 401 && !isSessionCall && this.accessToken !== null) {
      const sentWith = this.accessToken;
      const renewed = await this.refresh();
      if (renewed && this.accessToken !== sentWith) {
        response = await this.sendWithRetries(this.decorate(original));
      } else if (!renewed && !this.signedIn) {
        // Refused (not merely offline): the session is over.
        this.options.onSessionEnded();
      }
    }
    await this.remember(response);
    return response;
  };

  private decorate(request: Request): Request {
    const headers = new Headers(request.headers);
    if (this.accessToken !== null && !headers.has('Authorization')) {
      headers.set('Authorization', `Bearer ${this.accessToken}`);
    }
    if (this.consistencyToken !== null && !headers.has(CONSISTENCY_HEADER)) {
      headers.set(CONSISTENCY_HEADER, this.consistencyToken);
    }
    return new Request(request, { headers });
  }

  private async sendWithRetries(request: Request): Promise<Response> {
    const retries = IDEMPOTENT.has(request.method) ? this.options.maxReadRetries : 0;
    let current = request;
    for (let attempt = 0; ; attempt++) {
      const spare = attempt < retries ? current.clone() : null;
      const response = await this.send(current);
      if (!RETRYABLE.has(response.status) || spare === null) return response;
      const asked = Number(response.headers.get('Retry-After'));
      // No usable Retry-After: a short back-off that grows; never longer than the cap.
      const seconds = Number.isFinite(asked) && asked > 0 ? asked : 0.5 * 2 ** attempt;
      if (seconds > this.options.maxRetryWaitSeconds) return response;
      await this.options.sleep(seconds * 1000);
      current = spare;
    }
  }

  /** Keeps the consistency token of a successful write (header or body field). */
  private async remember(response: Response): Promise<void> {
    if (!response.ok) return;
    const header = response.headers.get(CONSISTENCY_HEADER);
    if (header) {
      this.consistencyToken = header;
      return;
    }
    const type = response.headers.get('Content-Type') ?? '';
    if (!type.includes('json')) return;
    try {
      const body: unknown = await response.clone().json();
      if (typeof body === 'object' && body !== null && 'consistencyToken' in body) {
        const token = (body as { consistencyToken: unknown }).consistencyToken;
        if (typeof token === 'string' && token) this.consistencyToken = token;
      }
    } catch {
      // Not JSON after all: nothing to remember.
    }
  }
}

function baseOrigin(): string {
  return globalThis.location?.origin ?? 'http://localhost';
}
