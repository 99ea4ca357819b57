// HTTP routes of /v2/link (user tokens): what the Link front end reads and records for its one user.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AccountIdParamsSchema, CreateAccountBodySchema, LinkUserSchema, ListAccountsQuerySchema, ReportConnectionBodySchema } from '../accounts/accounts.schemas.js';
import { AccountsService, type Attempt } from '../accounts/accounts.service.js';
import { baseUrl } from '../http/base-url.js';
import { IdempotencyHeadersSchema, linkErrorResponses, pageSchema } from '../http/schemas.js';
import type { Idempotency } from '../idempotency/idempotency.js';
import type { UsersService } from '../users/users.service.js';

const tags = ['Link'];
const security = [{ bearerAuth: [] }];
const AccountRef = Type.Ref('Account');
const LinkQuerySchema = Type.Omit(ListAccountsQuerySchema, ['user', 'item']);

export const linkRoutes: FastifyPluginAsyncTypebox<{ users: UsersService; accounts: AccountsService; idempotency: Idempotency }> = async (
  app,
  { users, accounts, idempotency },
) => {
  app.get(
    '/user',
    {
      schema: {
        tags,
        security,
        operationId: 'retrieveLinkUser',
        summary: "Pre-fill Link's login screen",
        description: "The token's user: name, email and phone number only (never SSN, birth date, address or metadata).",
        response: { 200: LinkUserSchema, ...linkErrorResponses() },
      },
    },
    async (request) => users.prefill(request.clientId, request.linkUserId),
  );

  app.get(
    '/accounts',
    {
      schema: {
        tags,
        security,
        operationId: 'listLinkAccounts',
        summary: "List the user's accounts",
        description: "The token's user's accounts, oldest first (or newest first: `ordering`): what is connected already and what failed.",
        querystring: LinkQuerySchema,
        response: { 200: { ...pageSchema('Account'), description: 'A page of accounts.' }, ...linkErrorResponses(400) },
      },
    },
    async (request) => accounts.listForUser(request.clientId, request.linkUserId, request.query, baseUrl(request)),
  );

  app.post(
    '/accounts',
    {
      schema: {
        tags,
        security,
        operationId: 'createLinkAccount',
        summary: 'Start connecting an item',
        description:
          'Records a connection attempt: a new account in `connecting` (201), or the account the user already has for the ' +
          'item (200; a failed one starts a new attempt). One account per user and item.',
        headers: IdempotencyHeadersSchema,
        body: CreateAccountBodySchema,
        response: {
          200: { ...AccountRef, description: 'The account the user already had for this item.' },
          201: { ...AccountRef, description: 'A new account.' },
          ...linkErrorResponses(400, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const run = () =>
        idempotency.run(request.clientId, key, 'POST /v2/link/accounts', { user: request.linkUserId, ...request.body }, () =>
          accounts.planAttempt(request.clientId, request.linkUserId, request.body),
        );
      let result: Awaited<ReturnType<typeof run>> | undefined;
      for (let attempt = 0; result === undefined; attempt++) {
        try {
          result = await run();
        } catch (error) {
          // Another attempt for the item (or a change to its account) came first: plan again from what it left.
          if (!AccountsService.lostRace(error) || attempt >= 5) throw error;
        }
      }
      const { value, replayed } = result as { value: Attempt; replayed: boolean };
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(value.status).send(value.account);
    },
  );

  app.patch(
    '/accounts/:id',
    {
      schema: {
        tags,
        security,
        operationId: 'reportLinkAccount',
        summary: 'Report the outcome of a connection',
        description:
          '`connected` (sets `scanned_at`) or `error` with an `error_code`. An account whose last attempt failed takes no ' +
          "outcome until a new attempt starts (409). The user's `items_connected` and `employers_connected` follow.",
        params: AccountIdParamsSchema,
        body: ReportConnectionBodySchema,
        response: { 200: AccountRef, ...linkErrorResponses(400, 404, 409, 413, 415) },
      },
    },
    async (request) => accounts.report(request.clientId, request.linkUserId, request.params.id, request.body),
  );
};
