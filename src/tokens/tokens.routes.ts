// HTTP routes of /v2/user-tokens.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses, IdempotencyHeadersSchema } from '../http/schemas.js';
import type { Idempotency } from '../idempotency/idempotency.js';
import type { UsersService } from '../users/users.service.js';

const tags = ['User tokens'];

export const tokensRoutes: FastifyPluginAsyncTypebox<{ users: UsersService; idempotency: Idempotency }> = async (
  app,
  { users, idempotency },
) => {
  app.post(
    '/user-tokens',
    {
      schema: {
        tags,
        operationId: 'createUserToken',
        summary: 'Create a user token',
        description: 'Creates a new user token (valid one hour) for an existing user, for a new Link session.',
        headers: IdempotencyHeadersSchema,
        body: Type.Object({ user: Type.String({ format: 'uuid', description: 'ID of the user.' }) }),
        response: {
          200: Type.Object(
            { user_token: Type.String({ description: 'JWT (HS256), valid for one hour.' }) },
            { description: 'A new user token.' },
          ),
          ...errorResponses(400, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const { value, replayed } = await idempotency.run(request.clientId, key, 'POST /v2/user-tokens', request.body, () =>
        users.planToken(request.clientId, request.body.user),
      );
      if (replayed) reply.header('idempotent-replayed', 'true');
      return value;
    },
  );

  app.post(
    '/user-tokens/introspect',
    {
      schema: {
        tags,
        operationId: 'introspectUserToken',
        summary: 'Check a user token',
        description:
          'Reports whether a user token is valid now: signed by this service for this client, not expired, ' +
          'and its user not deleted. Inactive tokens reveal nothing else.',
        body: Type.Object({ user_token: Type.String({ maxLength: 4096 }) }),
        response: {
          200: Type.Object({
            active: Type.Boolean(),
            user_id: Type.Optional(Type.String({ format: 'uuid' })),
            client_id: Type.Optional(Type.String({ format: 'uuid' })),
            exp: Type.Optional(Type.Integer({ description: 'Expiry, seconds since the epoch.' })),
            jti: Type.Optional(Type.String()),
          }, { description: 'Whether the token is valid now, and whose it is.' }),
          ...errorResponses(400, 413, 415),
        },
      },
    },
    async (request) => users.introspectToken(request.clientId, request.body.user_token),
  );
};
