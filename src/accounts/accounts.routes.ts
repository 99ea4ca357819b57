// HTTP routes of /v2/accounts (API keys): the client's view of its users' payroll connections.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { baseUrl } from '../http/base-url.js';
import { errorResponses, pageSchema } from '../http/schemas.js';
import type { AccountsService } from './accounts.service.js';
import { AccountIdParamsSchema, ListAccountsQuerySchema } from './accounts.schemas.js';

const tags = ['Accounts'];
const AccountRef = Type.Ref('Account');

export const accountsRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountsService }> = async (app, { accounts }) => {
  app.get(
    '/accounts',
    {
      schema: {
        tags,
        operationId: 'listAccounts',
        summary: 'List all accounts',
        description:
          'Returns a paginated list of the accounts (payroll connections) of all users, oldest first (or newest first: `ordering`); filter by `user` or `item`. ' +
          'Paging works as for users.',
        querystring: ListAccountsQuerySchema,
        response: { 200: { ...pageSchema('Account'), description: 'A page of accounts.' }, ...errorResponses(400) },
      },
    },
    async (request) => accounts.list(request.clientId, request.query, baseUrl(request)),
  );

  app.get(
    '/accounts/:id',
    {
      schema: {
        tags,
        operationId: 'retrieveAccount',
        summary: 'Retrieve an account',
        description: 'Retrieves an account object.',
        params: AccountIdParamsSchema,
        response: { 200: AccountRef, ...errorResponses(404) },
      },
    },
    async (request) => accounts.get(request.clientId, request.params.id),
  );

  app.delete(
    '/accounts/:id',
    {
      schema: {
        tags,
        operationId: 'deleteAccount',
        summary: 'Delete an account',
        description:
          "Deletes an account; the user's `items_connected` and `employers_connected` no longer count it. 204 status code: No content.",
        params: AccountIdParamsSchema,
        response: { 204: Type.Null({ description: '204 status code: No content.' }), ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      await accounts.delete(request.clientId, request.params.id);
      return reply.code(204).send(null);
    },
  );
};
