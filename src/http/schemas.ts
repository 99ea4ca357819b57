// Shared response shapes: the DRF error bodies every route can answer with.
import { Type } from 'typebox';

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

/** The error responses every authenticated route can give, merged into its own responses. */
export function errorResponses(...extra: Array<400 | 404 | 413 | 415>): Record<number, unknown> {
  const responses: Record<number, unknown> = {
    401: ref('DetailError', 'Missing or invalid API key credentials.'),
  };
  for (const status of extra) {
    if (status === 400) responses[400] = ref('ValidationError', 'Invalid input; nothing was changed.');
    if (status === 404) responses[404] = ref('DetailError', 'No such user for this client.');
    if (status === 413) responses[413] = ref('DetailError', 'The request body is larger than the limit.');
    if (status === 415) responses[415] = ref('DetailError', 'The request body is not JSON.');
  }
  return responses;
}
