// The console's only way to the service: its public /v2 endpoints on this origin, with the signed-in key.
import { session, type Credentials } from './session';

/** DRF's field errors: `{"field": ["message"]}`, nested for nested objects. */
export interface FieldErrors {
  [field: string]: string[] | FieldErrors;
}

/** A request the service refused or did not answer (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly requestId: string | null = null,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(ApiError.detailOf(body) ?? `HTTP ${status}`);
    this.name = 'ApiError';
  }

  static detailOf(body: unknown): string | undefined {
    const detail = (body as { detail?: unknown } | null)?.detail;
    return typeof detail === 'string' ? detail : undefined;
  }

  /** The service's own words, `{"detail": "..."}`. */
  get detail(): string | undefined {
    return ApiError.detailOf(this.body);
  }

  /** Field errors of a 400, when the body has them. */
  get fields(): FieldErrors | undefined {
    if (this.status !== 400 || typeof this.body !== 'object' || this.body === null || this.detail !== undefined) return undefined;
    return this.body as FieldErrors;
  }
}

export interface Answer<T> {
  data: T;
  etag: string | null;
}

export interface CallOptions {
  body?: unknown;
  ifMatch?: string | null;
  idempotencyKey?: string;
  accept?: string;
  signal?: AbortSignal;
  /** Sign-in tries credentials before they are the session's. */
  credentials?: Credentials;
}

function basic({ keyId, secret }: Credentials): string {
  const bytes = new TextEncoder().encode(`${keyId}:${secret}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

/**
 * The path and query of a `next`/`previous` link, so that the key is only ever sent to this origin's /v2,
 * whatever host the link names.
 */
export function apiPath(link: string): string {
  const url = new URL(link, location.origin);
  if (!url.pathname.startsWith('/v2/')) throw new Error(`not an API link: ${link}`);
  return `${url.pathname}${url.search}`;
}

async function send(method: string, path: string, options: CallOptions): Promise<Response> {
  const credentials = options.credentials ?? session.credentials();
  if (!credentials) throw new ApiError(401, { detail: 'Not signed in.' });
  const headers: Record<string, string> = {
    accept: options.accept ?? 'application/json',
    authorization: basic(credentials),
    // The service then answers a wrong key without a Basic challenge, so the browser opens no login dialog of its own.
    'x-requested-with': 'XMLHttpRequest',
  };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.ifMatch) headers['if-match'] = options.ifMatch;
  if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      // No cookies, and (by the Fetch standard) no browser prompt on a 401.
      credentials: 'omit',
      cache: 'no-store',
      signal: options.signal,
    });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw new ApiError(0, null);
  }
  if (response.ok) return response;
  const text = await response.text().catch(() => '');
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text.slice(0, 200) };
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  const error = new ApiError(response.status, body, response.headers.get('x-request-id'), Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null);
  // The session's key stopped working (revoked, or the store was reset): back to the sign-in page.
  if (response.status === 401 && !options.credentials) {
    session.signOut('The service no longer accepts this API key (it may have been revoked). Sign in again with a current key.');
  }
  throw error;
}

export async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<Answer<T>> {
  const response = await send(method, path, options);
  const text = await response.text();
  return { data: (text ? JSON.parse(text) : null) as T, etag: response.headers.get('etag') };
}

export const api = {
  get: <T>(path: string, options?: CallOptions) => call<T>('GET', path, options).then((answer) => answer.data),
  call,
  /** A file from the API (e.g. a CSV export), with its name from Content-Disposition when it gives one. */
  async download(path: string): Promise<{ blob: Blob; filename: string | null }> {
    const response = await send('GET', path, { accept: 'text/csv, */*' });
    const disposition = response.headers.get('content-disposition') ?? '';
    const filename = /filename="?([^";]+)"?/i.exec(disposition)?.[1] ?? null;
    return { blob: await response.blob(), filename };
  },
};

/** 128 random bits in hex (crypto.randomUUID exists only on https and localhost pages). */
function randomKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** An Idempotency-Key for a create: the same while the same body is retried, so a retry never creates twice. */
export function idempotencyKeyFor(body: unknown, last: { body: string; key: string } | null): { body: string; key: string } {
  const text = JSON.stringify(body);
  return last?.body === text ? last : { body: text, key: randomKey() };
}
