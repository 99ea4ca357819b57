// The API key object as GET /v2/api-keys lists it: never the secret or its hash.
import { Type, type Static } from 'typebox';
import { pageQuerySchema, pageSchema } from '../http/schemas.js';

export const ApiKeySchema = Type.Object(
  {
    id: Type.String({ description: 'The api_key_id: the username of HTTP Basic auth.' }),
    name: Type.String({ description: 'The label the key was created with.' }),
    created_at: Type.String({ format: 'date-time', description: 'When the key was created (ISO 8601, UTC, microseconds).' }),
    revoked_at: Type.Unsafe<string | null>({
      type: ['string', 'null'],
      format: 'date-time',
      description: 'When the key was revoked; null while it is active.',
    }),
    current: Type.Boolean({ description: 'Whether this is the key that authenticated the request.' }),
  },
  { $id: 'ApiKey', additionalProperties: false },
);
export type ApiKey = Static<typeof ApiKeySchema>;

export const ListApiKeysQuerySchema = pageQuerySchema('API keys', {});

export const ListApiKeysResponseSchema = pageSchema('ApiKey');
