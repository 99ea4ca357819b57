// The API's errors as one typed exception: its status and its Django REST Framework body.
import type { components } from './schema.js';

export type DetailError = components['schemas']['DetailError'];
/** `{"email": ["Enter a valid email address."]}`, nested for nested objects and list items (`{"address": {"country": [...]}}`). */
export type FieldErrors = { [field: string]: string[] | FieldErrors };
export type ErrorBody = DetailError | FieldErrors;

export const isDetailError = (body: ErrorBody): body is DetailError => typeof body.detail === 'string';

/** Any answer that is not 2xx. */
export class UsersApiError extends Error {
  override readonly name = 'UsersApiError';

  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly response: Response,
  ) {
    super(`${status} ${isDetailError(body) ? body.detail : JSON.stringify(body)}`);
  }

  /** The answer's X-Request-Id, to quote when asking about it. */
  get requestId(): string | null {
    return this.response.headers.get('x-request-id');
  }

  /** The `detail` of an error that is not about fields. */
  get detail(): string | undefined {
    return isDetailError(this.body) ? this.body.detail : undefined;
  }

  /** The field errors; `{}` for a `detail` error. */
  get fieldErrors(): FieldErrors {
    return isDetailError(this.body) ? {} : this.body;
  }

  /** The messages about one field, a dotted path for nested ones (`address.country`, `events.1`); `[]` if none. */
  messages(field: string): string[] {
    let node: string[] | FieldErrors | undefined = this.fieldErrors;
    for (const key of field.split('.')) node = node === undefined || Array.isArray(node) ? undefined : node[key];
    return Array.isArray(node) ? node : [];
  }
}

/** Whether `error` is the API's answer (with `status`, when given). */
export function isUsersApiError(error: unknown, status?: number): error is UsersApiError {
  return error instanceof UsersApiError && (status === undefined || error.status === status);
}

/** openapi-fetch's error (parsed JSON, else the text) as a DRF body: an answer that is not JSON becomes its `detail`. */
export function errorBody(error: unknown, response: Response): ErrorBody {
  if (typeof error === 'object' && error !== null && !Array.isArray(error)) return error as ErrorBody;
  return { detail: typeof error === 'string' && error !== '' ? error : response.statusText || `HTTP ${response.status}` };
}
