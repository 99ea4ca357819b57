// buildApp(config, deps) -> FastifyInstance. Never listens: server.ts does, and tests inject.
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Db } from './db/database.js';
import { basicAuth } from './http/auth.js';
import { registerErrorHandling, trackMethodsForNotAllowed } from './http/errors.plugin.js';
import { registerHealth } from './http/health.js';
import { Idempotency } from './idempotency/idempotency.js';
import { ApiKeyVerifier } from './keys/keys.service.js';
import { registerJsonBody } from './http/json-body.js';
import { registerLoadShedding, registerRateLimit, registerSecurityHeaders, securityHeaders } from './http/limits.js';
import { DetailErrorSchema, ValidationErrorSchema } from './http/schemas.js';
import { createValidatorCompiler } from './http/validation.js';
import { tokensRoutes } from './tokens/tokens.routes.js';
import { UserTokens } from './tokens/tokens.js';
import { CursorCodec } from './paging/cursor.js';
import { usersRoutes } from './users/users.routes.js';
import { USER_FORMATS, UserSchema } from './users/users.schemas.js';
import { UsersService } from './users/users.service.js';
import { PiiCipher } from './pii/pii.cipher.js';
import { deriveKey, type Secrets } from './secrets.js';
import { UsersRepository } from './users/users.repository.js';
import { lazyRequestLogger } from './logger.js';

export interface AppDeps {
  db: Db;
  /** Resolved from configuration, or the files beside an embedded database (see secrets.ts). */
  secrets: Secrets;
  logger?: Logger;
}

export const API_DESCRIPTION =
  'Users connect their payroll accounts using Link. Create a user per applicant, hand the short-lived user ' +
  'token to the front end, look users up by your own `external_id`, page through them, update and delete them.\n\n' +
  'Errors use Django REST Framework\'s shapes: `{"field": ["message"]}` for invalid fields and `{"detail": "..."}` otherwise.';

interface OpenApiDocument {
  paths?: Record<string, Record<string, { requestBody?: { required?: boolean; content: Record<string, { schema?: { required?: string[] } }> } }>>;
}

/** A body whose schema requires no field may be omitted entirely (a bare POST creates a user). */
function markOptionalBodies(document: OpenApiDocument): OpenApiDocument {
  for (const operations of Object.values(document.paths ?? {})) {
    for (const { requestBody } of Object.values(operations)) {
      if (!requestBody) continue;
      requestBody.required = Object.values(requestBody.content).some((media) => (media.schema?.required ?? []).length > 0);
    }
  }
  return document;
}

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger as FastifyBaseLogger, childLoggerFactory: lazyRequestLogger } : { logger: false }),
    bodyLimit: config.bodyLimit,
    requestTimeout: config.limits.requestTimeoutMs,
    // Node checks the headers deadline on this interval, so a dribbling client is cut off in time.
    http: { headersTimeout: config.limits.headersTimeoutMs, connectionsCheckingInterval: 1000 },
    // Fastify accepts a hop count too; its type omits it.
    trustProxy: config.trustProxy as boolean | string[],
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 100 },
    // A path that is not valid percent-encoding names nothing here.
    frameworkErrors: (_error, request, reply) => {
      void (reply as FastifyReply).code(404).headers(securityHeaders(request)).send({ detail: 'Not found.' });
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.server.maxConnections = config.limits.maxConnections;
  registerJsonBody(app);
  registerSecurityHeaders(app);
  await registerLoadShedding(app, config.limits);
  registerErrorHandling(app, config.bodyLimit);
  app.setValidatorCompiler(createValidatorCompiler(USER_FORMATS));
  // Once closing, answers end their connection: a keep-alive client must not hold up the shutdown.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  for (const schema of [UserSchema, DetailErrorSchema, ValidationErrorSchema]) app.addSchema(schema);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Users API', version: '2.0.0', description: API_DESCRIPTION },
      components: {
        securitySchemes: {
          basicAuth: { type: 'http', scheme: 'basic', description: 'Username = api_key_id, Password = api_key_secret' },
        },
      },
      security: [{ basicAuth: [] }],
    },
    transformObject: (document) =>
      markOptionalBodies(('openapiObject' in document ? document.openapiObject : {}) as OpenApiDocument) as object,
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  registerHealth(app, deps.db);

  const { userTokenSecret, piiKeys } = deps.secrets;
  const pii = new PiiCipher(piiKeys);
  const idempotency = new Idempotency(deps.db, pii);
  const users = new UsersService(
    new UsersRepository(deps.db, pii),
    // User tokens are signed with the secret exactly as configured, so a client's own service can verify them.
    new UserTokens(new TextEncoder().encode(userTokenSecret), config.userTokenIssuer),
    new CursorCodec(Buffer.from(deriveKey(userTokenSecret, 'cursor'))),
  );
  await app.register(
    async (v2) => {
      v2.addHook('onRequest', basicAuth(new ApiKeyVerifier(deps.db, config.apiKeyCacheMs)));
      await registerRateLimit(v2, config.limits);
      const addNotAllowed = trackMethodsForNotAllowed(v2);
      await v2.register(usersRoutes, { users, idempotency });
      await v2.register(tokensRoutes, { users, idempotency });
      addNotAllowed();
    },
    { prefix: '/v2' },
  );
  return app;
}
