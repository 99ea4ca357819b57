// HTTP routes of /v2/users: schemas and status codes only; the rules live in UsersService.
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Idempotency } from '../idempotency/idempotency.js';
import { errorResponses, IdempotencyHeadersSchema, IfMatchHeadersSchema } from '../http/schemas.js';
import { baseUrl } from '../http/base-url.js';
import { startedStream } from '../http/streams.js';
import { CSV_COLUMNS } from './users.export.js';
import {
  CreateUserResponseSchema,
  ExportUsersQuerySchema,
  ListUsersQuerySchema,
  ListUsersResponseSchema,
  UserIdParamsSchema,
  UserInputSchema,
} from './users.schemas.js';
import { parseIfMatch, type UsersService } from './users.service.js';

const tags = ['Users'];
const UserRef = Type.Unsafe({ $ref: 'User', description: 'The user object.' });

export const usersRoutes: FastifyPluginAsyncTypebox<{ users: UsersService; idempotency: Idempotency }> = async (
  app,
  { users, idempotency },
) => {
  app.post(
    '/users',
    {
      schema: {
        tags,
        operationId: 'createUser',
        summary: 'Create a user',
        description:
          'Creates a new user object. Includes a new user token in the response. The body is optional: ' +
          'an empty request creates a user with no fields set.',
        headers: IdempotencyHeadersSchema,
        body: UserInputSchema,
        response: {
          200: { ...CreateUserResponseSchema, description: 'The new user and a user token for it.' },
          ...errorResponses(400, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const { value, replayed } = await idempotency.run(request.clientId, key, 'POST /v2/users', request.body, () =>
        users.planCreate(request.clientId, request.body),
      );
      if (replayed) reply.header('idempotent-replayed', 'true');
      return value;
    },
  );

  app.get(
    '/users',
    {
      schema: {
        tags,
        operationId: 'listUsers',
        summary: 'List all users',
        description:
          'Returns a paginated list of all user objects, oldest first (newest first with `ordering=-created_at`). ' +
          'Follow `next`/`previous` to walk the list; ' +
          'a walk returns every user that exists throughout it exactly once.',
        querystring: ListUsersQuerySchema,
        response: { 200: { ...ListUsersResponseSchema, description: 'A page of users.' }, ...errorResponses(400) },
      },
    },
    async (request) => users.list(request.clientId, request.query, baseUrl(request)),
  );

  // A static path: find-my-way matches it before /users/:id.
  app.get(
    '/users/export.csv',
    {
      schema: {
        tags,
        operationId: 'exportUsersCsv',
        summary: 'Export users as CSV',
        description:
          'Every user of the client as CSV (`text/csv; charset=utf-8`, `Content-Disposition: attachment; filename="users.csv"`), ' +
          `streamed: the header row \`${CSV_COLUMNS.join(',')}\`, then one row per user, filtered by \`external_id\` and ` +
          'ordered by `ordering` as the list is. Never personal data (no name, email, phone, SSN, birth date or address). ' +
          'RFC 4180: lines end in CRLF; a field holding a comma, a double quote, CR or LF is quoted, its quotes doubled. ' +
          '`items_connected` and `employers_connected` are joined with `;` in their field; a null (or blank) `external_id` is ' +
          'an empty field. Against formula injection, a field that starts with `=`, `+`, `-`, `@`, a tab, CR or `\'` gets one ' +
          "leading `'` (remove one leading `'` to get the value back).",
        querystring: ExportUsersQuerySchema,
        response: {
          200: {
            description: 'The CSV, streamed.',
            // Sent as a stream, never serialized: typed so, documented as the string it is.
            content: { 'text/csv': { schema: Type.Unsafe<Readable>({ type: 'string', description: `${CSV_COLUMNS.join(',')}, CRLF line ends.` }) } },
          },
          ...errorResponses(400),
        },
      },
    },
    async (request, reply) => {
      reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="users.csv"');
      // Fastify answers HEAD by reading the GET's stream to its end and dropping it: here, that would be the whole walk.
      if (request.method === 'HEAD') return reply.send(Readable.from([]));
      return reply.send(await startedStream(users.exportCsv(request.clientId, request.query)));
    },
  );

  app.get(
    '/users/:id',
    {
      schema: {
        tags,
        operationId: 'retrieveUser',
        summary: 'Retrieve a user',
        description: 'Retrieves a user object.',
        params: UserIdParamsSchema,
        response: { 200: UserRef, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      const { user, etag } = await users.get(request.clientId, request.params.id);
      return reply.header('etag', etag).send(user);
    },
  );

  app.patch(
    '/users/:id',
    {
      schema: {
        tags,
        operationId: 'updateUser',
        summary: 'Update a user',
        description:
          'Updates a user object as a JSON merge patch: fields present replace stored ones, null clears a field, ' +
          '`address`, `birth_date` and `open_banking` merge key by key, `external_metadata` is replaced whole.',
        params: UserIdParamsSchema,
        headers: IfMatchHeadersSchema,
        body: UserInputSchema,
        response: { 200: UserRef, ...errorResponses(400, 404, 412, 413, 415) },
      },
    },
    async (request, reply) => {
      const precondition = parseIfMatch(request.headers['if-match']);
      const { user, etag } = await users.update(request.clientId, request.params.id, request.body, precondition);
      return reply.header('etag', etag).send(user);
    },
  );

  app.delete(
    '/users/:id',
    {
      schema: {
        tags,
        operationId: 'deleteUser',
        summary: 'Delete a user',
        description:
          'Deletes a user object and everything attached to it; its user tokens stop being valid. 204 status code: No content.',
        params: UserIdParamsSchema,
        headers: IfMatchHeadersSchema,
        response: { 204: Type.Null({ description: '204 status code: No content.' }), ...errorResponses(404, 412) },
      },
    },
    async (request, reply) => {
      await users.delete(request.clientId, request.params.id, parseIfMatch(request.headers['if-match']));
      return reply.code(204).send(null);
    },
  );
};
