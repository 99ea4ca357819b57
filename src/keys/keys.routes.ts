// HTTP routes of /v2/api-keys: the caller's own client's keys, never their secrets.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { baseUrl } from '../http/base-url.js';
import { errorResponses } from '../http/schemas.js';
import { ListApiKeysQuerySchema, ListApiKeysResponseSchema } from './keys.schemas.js';
import type { ApiKeysService } from './keys.service.js';

export const keysRoutes: FastifyPluginAsyncTypebox<{ keys: ApiKeysService }> = async (app, { keys }) => {
  app.get(
    '/api-keys',
    {
      schema: {
        tags: ['API keys'],
        operationId: 'listApiKeys',
        summary: "List the client's API keys",
        description:
          'The API keys of the client whose key makes the request, revoked ones included, oldest first (or newest first: ' +
          '`ordering`), paged like users. `current` marks the key making the request. Never a secret or its hash.',
        querystring: ListApiKeysQuerySchema,
        response: { 200: { ...ListApiKeysResponseSchema, description: 'A page of API keys.' }, ...errorResponses(400) },
      },
    },
    async (request) => keys.list(request.clientId, request.apiKeyId, request.query, baseUrl(request)),
  );
};
