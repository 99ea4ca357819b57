// Shared request and response shapes: the DRF error bodies every route can answer with, the paged lists' query and envelope.
import { Type, type TSchema } from 'typebox';
import { ORDERINGS, type Ordering } from '../paging/keyset.js';

export const DetailErrorSchema = Type.Object(
  { detail: Type.String() },
  { $id: 'DetailError', description: 'An error that is not about a particular field.' },
);

export const ValidationErrorSchema = Type.Object(
  {
    detail: Type.Optional(Type.String({ description: 'Set instead of field errors when the body is not JSON.' })),
    non_field_errors: Type.Optional(Type.Array(Type.String())),
  },
  {
    $id: 'ValidationError',
    additionalProperties: true,
    description:
      'Field errors: `{"field": ["message", ...]}`, nested for nested objects ' +
      '(`{"address": {"country": ["\\"XX\\" is not a valid choice."]}}`); or `{"detail": "..."}` for a body that is not JSON.',
  },
);

const ref = (id: string, description: string) => Type.Unsafe({ $ref: id, description });

const ERROR_RESPONSES = {
  400: ref('ValidationError', 'Invalid input; nothing was changed.'),
  404: ref('DetailError', 'No such object for this client.'),
  409: ref('DetailError', 'The change makes no sense in the object\'s current state; nothing was changed.'),
  412: ref('DetailError', 'If-Match named a version that is no longer current; nothing was changed.'),
  413: ref('DetailError', 'The request body is larger than the limit.'),
  415: ref('DetailError', 'The request body is not JSON.'),
  422: ref('DetailError', 'The Idempotency-Key was already used with a different request.'),
} as const;

type ErrorStatus = keyof typeof ERROR_RESPONSES;

/** The error responses every API-key route can give (401, 429), plus the ones listed. */
export function errorResponses(...extra: ErrorStatus[]): Record<number, unknown> {
  const responses: Record<number, unknown> = {
    401: ref(
      'DetailError',
      'Missing or invalid API key credentials. `WWW-Authenticate: Basic`, or `XBasic` (no browser login dialog) for `X-Requested-With: XMLHttpRequest`.',
    ),
    429: ref('DetailError', 'Too many requests for this API key; see Retry-After.'),
  };
  for (const status of extra) responses[status] = ERROR_RESPONSES[status];
  return responses;
}

/** The error responses of the Link routes (authenticated with a user token), plus the ones listed. */
export function linkErrorResponses(...extra: ErrorStatus[]): Record<number, unknown> {
  const responses: Record<number, unknown> = {
    401: ref('DetailError', 'Missing, invalid or expired user token, or its user was deleted (WWW-Authenticate: Bearer).'),
  };
  for (const status of extra) responses[status] = ERROR_RESPONSES[status];
  return responses;
}

/**
 * `ordering`, in DRF's OrderingFilter style. `x-invalid-choice` completes the validator's "is not a valid choice."
 * so that the error names the values there are.
 */
export const OrderingSchema = Type.Unsafe<Ordering>({
  type: 'string',
  enum: [...ORDERINGS],
  description:
    '`created_at` (the default): oldest first; `-created_at`: newest first. Sealed in the cursor with the limit and ' +
    'filters, so it is ignored beside a `cursor`.',
  'x-invalid-choice': 'Use created_at (oldest first, the default) or -created_at (newest first).',
});

/**
 * The query of a paged list: `limit`, `ordering` and `cursor`, and the list's own filters. Every filter, the ordering
 * and the limit are sealed in the cursor, so a `next` or `previous` URL carries the cursor alone.
 */
export function pageQuerySchema<F extends Record<string, TSchema>>(things: string, filters: F) {
  return Type.Partial(
    Type.Object({
      limit: Type.Integer({
        minimum: 1,
        description: `Number of ${things} returned per page. Default: 10. Maximum: 200 (larger values are treated as 200).`,
      }),
      ...filters,
      ordering: OrderingSchema,
      cursor: Type.String({
        description:
          'Opaque cursor from the `next` or `previous` URL of a previous page; it carries the limit, ordering and filters of the walk.',
      }),
    }),
  );
}

/** The list envelope of every paged list: absolute next/previous links and a page of `ref` objects. */
export function pageSchema(ref: string) {
  const link = (description: string) => Type.Unsafe<string | null>({ type: ['string', 'null'], format: 'uri', description });
  return Type.Object({
    next: link('URL for the next page of results, if available.'),
    previous: link('URL for the previous page of results, if available.'),
    results: Type.Array(Type.Ref(ref)),
  });
}

export const IdempotencyHeadersSchema = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      maxLength: 255,
      description:
        'Makes a retry return the first response (kept 24 hours) instead of acting again. ' +
        'Reusing a key with a different body is 422. Two overlapping requests with one key act once: the second answers with the first one\'s response.',
    }),
  ),
});

export const IfMatchHeadersSchema = Type.Object({
  'if-match': Type.Optional(
    Type.String({
      description: 'An ETag from GET or PATCH (e.g. `"v3"`): apply only to that version of the user, else 412.',
    }),
  ),
});
