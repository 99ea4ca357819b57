// HTTP routes of /v2/user-tokens.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../http/schemas.js';
import type { UsersService } from '../users/users.service.js';

const tags = ['User tokens'];

export const tokensRoutes: FastifyPluginAsyncTypebox<{ users: UsersService }> = async (app, { users }) => {
  app.post(
    '/user-tokens',
    {
      schema: {
        tags,
        operationId: 'createUserToken',
        summary: 'Create a user token',
        description: 'Creates a new user token (valid one hour) for an existing user, for a new Link session.',
        body: Type.Object({ user: Type.String({ format: 'uuid', description: 'ID of the user.' }) }),
        response: {
          200: Type.Object(
            { user_token: Type.String({ description: 'JWT (HS256), valid for one hour.' }) },
            { description: 'A new user token.' },
          ),
          ...errorResponses(400, 413, 415),
        },
      },
    },
    async (request) => ({ user_token: await users.mintToken(request.clientId, request.body.user) }),
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
