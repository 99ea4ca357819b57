// buildApp(config, deps) -> FastifyInstance. Never listens: server.ts does, and tests inject.
import { randomUUID } from 'node:crypto';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Db } from './db/database.js';
import { basicAuth } from './http/auth.js';
import { registerConsole } from './http/console.js';
import { registerErrorHandling, trackMethodsForNotAllowed } from './http/errors.plugin.js';
import { registerHealth } from './http/health.js';
import { Idempotency } from './idempotency/idempotency.js';
import { ApiKeysService, ApiKeyVerifier } from './keys/keys.service.js';
import { keysRoutes } from './keys/keys.routes.js';
import { ApiKeySchema } from './keys/keys.schemas.js';
import { registerJsonBody } from './http/json-body.js';
import { connectRateLimitStore, registerLoadShedding, registerRateLimit, registerSecurityHeaders, securityHeaders } from './http/limits.js';
import { DetailErrorSchema, ValidationErrorSchema } from './http/schemas.js';
import { createValidatorCompiler } from './http/validation.js';
import { DeferredCompiles, registerDeferredCompiles } from './http/lazy-schemas.js';
import { tokensRoutes } from './tokens/tokens.routes.js';
import { UserTokens } from './tokens/tokens.js';
import { CursorCodec } from './paging/cursor.js';
import { usersRoutes } from './users/users.routes.js';
import { USER_FORMATS, UserSchema } from './users/users.schemas.js';
import { UsersService } from './users/users.service.js';
import { PiiCipher } from './pii/pii.cipher.js';
import type { Secrets } from './secrets.js';
import { UsersRepository } from './users/users.repository.js';
import { lazyRequestLogger } from './logger.js';
import cors from '@fastify/cors';
import { accountsRoutes } from './accounts/accounts.routes.js';
import { AccountSchema } from './accounts/accounts.schemas.js';
import { AccountsService } from './accounts/accounts.service.js';
import { bearerAuth } from './link/link.auth.js';
import { linkRoutes } from './link/link.routes.js';
import { WebhookDispatcher } from './webhooks/webhooks.dispatcher.js';
import { WebhooksRepository } from './webhooks/webhooks.repository.js';
import { webhooksRoutes } from './webhooks/webhooks.routes.js';
import { DeliverySchema, WebhookSchema } from './webhooks/webhooks.schemas.js';
import { WebhooksService } from './webhooks/webhooks.service.js';
import type { Telemetry } from './telemetry/telemetry.js';

export interface AppDeps {
  db: Db;
  /** Resolved from configuration, or the files beside an embedded database (see secrets.ts). */
  secrets: Secrets;
  logger?: Logger;
  /** Metrics and traces, when configured (see telemetry/). */
  telemetry?: Telemetry;
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

/** The X-Request-Id values passed through: what tracing systems and load balancers send. */
const REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const compiles = new DeferredCompiles();
  const app = Fastify({
    // Fastify's own response serializers (fast-json-stringify), each compiled on its first response.
    schemaController: {
      compilersFactory: {
        buildSerializer: (externalSchemas, options) => {
          const compilerOf = SerializerSelector()(externalSchemas as never, options as never);
          return (route) => compiles.onFirstUse(() => compilerOf(route as never) as (data: unknown) => string);
        },
      },
    },
    ...(deps.logger ? { loggerInstance: deps.logger as FastifyBaseLogger, childLoggerFactory: lazyRequestLogger } : { logger: false }),
    bodyLimit: config.bodyLimit,
    requestTimeout: config.limits.requestTimeoutMs,
    // Node checks the headers deadline on this interval, so a dribbling client is cut off in time.
    http: { headersTimeout: config.limits.headersTimeoutMs, connectionsCheckingInterval: 1000 },
    // Fastify accepts a hop count too; its type omits it.
    trustProxy: config.trustProxy as boolean | string[],
    // A caller's X-Request-Id is kept when it is a plain token; anything else (spaces, control characters, more
    // than 128 characters) would be logged and echoed verbatim, so it is replaced by a fresh id.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 100 },
    // A path that is not valid percent-encoding names nothing here.
    frameworkErrors: (_error, request, reply) => {
      void (reply as FastifyReply).code(404).headers(securityHeaders(request)).send({ detail: 'Not found.' });
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.server.maxConnections = config.limits.maxConnections;
  deps.telemetry?.register(app);
  registerJsonBody(app);
  registerSecurityHeaders(app);
  await registerLoadShedding(app, config.limits);
  registerErrorHandling(app, config.bodyLimit);
  app.setValidatorCompiler(createValidatorCompiler(USER_FORMATS, compiles));
  registerDeferredCompiles(app, compiles);
  // Once closing, answers end their connection: a keep-alive client must not hold up the shutdown.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  for (const schema of [UserSchema, AccountSchema, WebhookSchema, DeliverySchema, ApiKeySchema, DetailErrorSchema, ValidationErrorSchema]) {
    app.addSchema(schema);
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Users API', version: '2.0.0', description: API_DESCRIPTION },
      components: {
        securitySchemes: {
          basicAuth: { type: 'http', scheme: 'basic', description: 'Username = api_key_id, Password = api_key_secret' },
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A user token (the Link routes only).' },
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
  await registerConsole(app);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  registerHealth(app, deps.db);

  const { userTokenSecret, piiKeys } = deps.secrets;
  const pii = new PiiCipher(piiKeys);
  const idempotency = new Idempotency(deps.db, pii);
  // User tokens are signed with the secret exactly as configured, so a client's own service can verify them.
  const tokens = new UserTokens(new TextEncoder().encode(userTokenSecret), config.userTokenIssuer);
  const cursors = CursorCodec.forSecret(userTokenSecret);
  const rateLimitStore = await connectRateLimitStore(app, config.limits);
  const outbox = new WebhooksRepository(deps.db, pii);
  const users = new UsersService(new UsersRepository(deps.db, pii), tokens, cursors, outbox);
  const accounts = new AccountsService(deps.db, cursors, outbox);
  const webhooks = new WebhooksService(outbox, pii, cursors, config.webhooks.allowPrivate);
  if (config.webhooks.deliver) {
    const dispatcher = new WebhookDispatcher(outbox, pii, config.webhooks, app.log, deps.telemetry?.deliveries);
    app.addHook('onReady', async () => dispatcher.start());
    // Before the store closes: the deliveries in flight settle first.
    app.addHook('preClose', async () => dispatcher.stop());
  }
  await app.register(
    async (v2) => {
      v2.addHook('onRequest', basicAuth(new ApiKeyVerifier(deps.db, config.apiKeyCacheMs)));
      await registerRateLimit(v2, config.limits, rateLimitStore);
      const addNotAllowed = trackMethodsForNotAllowed(v2);
      await v2.register(usersRoutes, { users, idempotency });
      await v2.register(tokensRoutes, { users, idempotency });
      await v2.register(accountsRoutes, { accounts });
      await v2.register(webhooksRoutes, { webhooks });
      await v2.register(keysRoutes, { keys: new ApiKeysService(deps.db, cursors) });
      addNotAllowed();
    },
    { prefix: '/v2' },
  );
  // The Link side: user tokens instead of API keys, and CORS for the client's own pages (never on the API-key routes).
  await app.register(
    async (link) => {
      if (config.linkAllowedOrigins.length > 0) {
        await link.register(cors, {
          origin: [...config.linkAllowedOrigins],
          methods: ['GET', 'POST', 'PATCH'],
          allowedHeaders: ['authorization', 'content-type', 'idempotency-key'],
          exposedHeaders: ['idempotent-replayed', 'x-request-id'],
          maxAge: 600,
        });
      }
      link.addHook('onRequest', bearerAuth(tokens, (clientId, userId) => users.exists(clientId, userId)));
      // A budget per user (a front end in a browser is one user), apart from the client's API keys.
      await registerRateLimit(link, config.limits, rateLimitStore, (request) => `link:${request.clientId}:${request.linkUserId}`);
      const addNotAllowed = trackMethodsForNotAllowed(link);
      await link.register(linkRoutes, { users, accounts, idempotency });
      addNotAllowed();
    },
    { prefix: '/v2/link' },
  );
  return app;
}
