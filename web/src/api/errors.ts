/**
 * Errors from the API as one typed value. The gateway answers errors with a google.rpc.Status
 * in JSON: `{code, message, details: [{"@type": "type.googleapis.com/google.rpc.BadRequest",
 * fieldViolations: [{field, description}]}, …]}`.
 */

/** gRPC status code names, indexed by their number. */
export const CODE_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;
export type CodeName = (typeof CODE_NAMES)[number];

/** When the server gave no status (a proxy's HTML page, a dropped connection), guess from HTTP. */
const HTTP_CODES: Record<number, CodeName> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  412: 'FAILED_PRECONDITION',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

const BAD_REQUEST = 'type.googleapis.com/google.rpc.BadRequest';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    /** The gRPC code name, e.g. `INVALID_ARGUMENT`. */
    readonly code: CodeName,
    message: string,
    /** HTTP status of the response (0: no response at all). */
    readonly status: number,
    /** Field violations keyed by their camelCase JSON path (`title`, `lessons[0].title`). */
    readonly fieldViolations: Readonly<Record<string, string>> = {},
    /** Seconds the server asked us to wait (`Retry-After`), if it said. */
    readonly retryAfter: number | null = null,
    readonly details: readonly unknown[] = [],
  ) {
    super(message);
  }

  /** The message for one field, for showing it next to that field. */
  field(name: string): string | undefined {
    return this.fieldViolations[name];
  }
}

/** The seconds of a `Retry-After` header (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Builds the ApiError for a failed response from its (already parsed) body. */
export function toApiError(body: unknown, response: Response | undefined): ApiError {
  const status = response?.status ?? 0;
  const retryAfter = parseRetryAfter(response?.headers.get('Retry-After') ?? null);
  if (!isRecord(body) || typeof body.code !== 'number') {
    const code = HTTP_CODES[status] ?? (status >= 500 ? 'UNAVAILABLE' : 'UNKNOWN');
    const text = typeof body === 'string' && body ? body : response?.statusText || code;
    return new ApiError(code, text, status, {}, retryAfter);
  }
  const code = CODE_NAMES[body.code] ?? 'UNKNOWN';
  const message = typeof body.message === 'string' ? body.message : code;
  const details = Array.isArray(body.details) ? body.details : [];
  const violations: Record<string, string> = {};
  for (const detail of details) {
    if (!isRecord(detail) || detail['@type'] !== BAD_REQUEST) continue;
    const list = detail.fieldViolations;
    if (!Array.isArray(list)) continue;
    for (const v of list) {
      if (!isRecord(v) || typeof v.field !== 'string') continue;
      const description = typeof v.description === 'string' ? v.description : 'is invalid';
      // Several violations of one field read as one sentence.
      const previous = violations[v.field];
      violations[v.field] = previous ? `${previous}; ${description}` : description;
    }
  }
  return new ApiError(code, message, status, violations, retryAfter, details);
}

/** An error for a request that got no response (network down, aborted). */
export function networkError(cause: unknown): ApiError {
  if (cause instanceof ApiError) return cause;
  const aborted = cause instanceof DOMException && cause.name === 'AbortError';
  return new ApiError(
    aborted ? 'CANCELLED' : 'UNAVAILABLE',
    aborted ? 'The request was cancelled.' : 'The server cannot be reached. Check your connection.',
    0,
  );
}

/** Any thrown value as an ApiError (a network failure or a bug becomes code `UNKNOWN`). */
export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError('UNKNOWN', String(e), 0);
}
