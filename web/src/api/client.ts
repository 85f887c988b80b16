/**
 * The one API client of the app: openapi-fetch over the Session transport (session.ts).
 *
 *   const courses = await call(api.GET('/v1/courses', { params: { query: { q } } }));
 *
 * `call` turns an openapi-fetch result into its data or throws an ApiError (errors.ts).
 * Writes that accept one get an `Idempotency-Key`: pass `{ headers: actionHeaders(key) }`
 * with a key made once per user action (newActionKey()), so a retry of the same action is
 * recognised; without one a fresh key is made per request.
 */
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { ApiError, networkError, toApiError } from './errors';
import { IDEMPOTENT_BY_KEY } from './idempotent.gen';
import type { paths } from './schema';
import { Session, type SessionOptions } from './session';

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/** A key for one user action (a form submission): reuse it when the user retries that action. */
export function newActionKey(): string {
  return crypto.randomUUID();
}

export function actionHeaders(key: string): Record<string, string> {
  return { [IDEMPOTENCY_HEADER]: key };
}

/** Adds an Idempotency-Key to writes whose operation takes one; drops it from the others. */
export const idempotency: Middleware = {
  onRequest({ request, schemaPath }) {
    const keyed = IDEMPOTENT_BY_KEY.has(`${request.method} ${schemaPath}`);
    if (keyed && !request.headers.has(IDEMPOTENCY_HEADER)) {
      request.headers.set(IDEMPOTENCY_HEADER, newActionKey());
    } else if (!keyed && request.headers.has(IDEMPOTENCY_HEADER)) {
      // The gateway refuses the header where the method has no idempotency field.
      request.headers.delete(IDEMPOTENCY_HEADER);
    }
    return request;
  },
};

export interface ApiClient {
  api: Client<paths>;
  session: Session;
}

export function createApiClient(options: SessionOptions & { baseUrl?: string } = {}): ApiClient {
  const session = new Session(options);
  const api = createClient<paths>({
    baseUrl: options.baseUrl ?? globalThis.location?.origin ?? '',
    fetch: session.fetch,
    credentials: 'same-origin',
  });
  api.use(idempotency);
  return { api, session };
}

type Result<T> = { data?: T; error?: unknown; response: Response };

/** The data of a successful call, or an ApiError for anything else. */
export async function call<T>(pending: Promise<Result<T>>): Promise<T> {
  let result: Result<T>;
  try {
    result = await pending;
  } catch (cause) {
    throw networkError(cause);
  }
  if (result.error !== undefined || !result.response.ok) {
    throw toApiError(result.error, result.response);
  }
  return result.data as T;
}

export { ApiError };
