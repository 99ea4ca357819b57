// The error vocabulary (Django REST Framework's shapes) and how each maps to HTTP.

/** `{"field": ["message"]}`, nested for nested objects. */
export interface FieldErrors {
  [field: string]: string[] | FieldErrors;
}

/**
 * A failure that is the operator's to fix (the configuration, a key, the store, a backup): the CLI reports it in one
 * line with exit code 2, where other failures exit 1.
 */
export class OperatorError extends Error {}

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body.detail === 'string' ? body.detail : 'Invalid input.');
    this.name = 'ApiError';
  }
}

/** How a 401 asks for an API key: HTTP Basic, or the same under a name browsers do not know (see basicAuth). */
export type BasicChallenge = 'Basic' | 'XBasic';
const basicChallenge = (scheme: BasicChallenge) => ({ 'www-authenticate': `${scheme} realm="api"` });
const BEARER_CHALLENGE = { 'www-authenticate': 'Bearer realm="link"' };

export const errors = {
  validation: (fields: FieldErrors) => new ApiError(400, fields),
  jsonParse: (reason: string) => new ApiError(400, { detail: `JSON parse error - ${reason}` }),
  invalidCursor: () => new ApiError(400, { detail: 'Invalid cursor' }),
  notAuthenticated: (scheme: BasicChallenge = 'Basic') =>
    new ApiError(401, { detail: 'Authentication credentials were not provided.' }, basicChallenge(scheme)),
  authenticationFailed: (detail = 'Invalid username/password.', scheme: BasicChallenge = 'Basic') =>
    new ApiError(401, { detail }, basicChallenge(scheme)),
  /** The Link routes: a user token as `Authorization: Bearer ...`, in DRF's TokenAuthentication words. */
  bearerNotAuthenticated: () =>
    new ApiError(401, { detail: 'Authentication credentials were not provided.' }, BEARER_CHALLENGE),
  bearerFailed: (detail = 'Token is invalid or expired.') => new ApiError(401, { detail }, BEARER_CHALLENGE),
  notFound: () => new ApiError(404, { detail: 'Not found.' }),
  methodNotAllowed: (method: string, allow: string[]) =>
    new ApiError(405, { detail: `Method "${method}" not allowed.` }, { allow: allow.join(', ') }),
  unsupportedMediaType: (mediaType: string) =>
    new ApiError(415, { detail: `Unsupported media type "${mediaType}" in request.` }),
  payloadTooLarge: (limit: number) =>
    new ApiError(413, { detail: `Request body is too large. The limit is ${limit} bytes.` }),
  conflict: (detail: string) => new ApiError(409, { detail }),
  preconditionFailed: () =>
    new ApiError(412, { detail: 'Precondition failed: the user has changed since the ETag in If-Match.' }),
  internal: () => new ApiError(500, { detail: 'A server error occurred.' }),
  unavailable: () => new ApiError(503, { detail: 'Service temporarily unavailable, try again later.' }),
};

/** Adds `message` at `path` in a nested FieldErrors tree. */
export function addFieldError(tree: FieldErrors, path: readonly string[], message: string): void {
  // Path segments can be any JSON key ("__proto__" included): read own properties, define, never assign.
  const get = (node: FieldErrors, key: string) => (Object.hasOwn(node, key) ? node[key] : undefined);
  const set = (node: FieldErrors, key: string, value: string[] | FieldErrors) =>
    Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
  let node = tree;
  for (const key of path.slice(0, -1)) {
    const next = get(node, key);
    if (next === undefined || Array.isArray(next)) set(node, key, {});
    node = get(node, key) as FieldErrors;
  }
  const leaf = path.at(-1) ?? 'non_field_errors';
  const existing = get(node, leaf);
  if (Array.isArray(existing)) {
    if (!existing.includes(message)) existing.push(message);
  } else if (existing === undefined) {
    set(node, leaf, [message]);
  } else {
    // A nested field already has child errors; whole-object problems go under non_field_errors.
    addFieldError(existing, ['non_field_errors'], message);
  }
}
