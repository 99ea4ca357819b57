// Turns every failure into a DRF-shaped body: typed ApiErrors as they are, framework errors mapped, the rest a bare 500.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../db/database.js';
import { ApiError, errors } from '../errors.js';
import { PiiCorruptError, PiiKeyMissingError } from '../pii/pii.cipher.js';

const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

function toApiError(error: FastifyError, request: FastifyRequest, bodyLimit: number): ApiError {
  if (error instanceof ApiError) return error;
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errors.payloadTooLarge(bodyLimit);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return errors.unsupportedMediaType((request.headers['content-type'] ?? '').slice(0, 100));
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError(status, { detail: error.message });
  return errors.internal();
}

function send(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.code(error.statusCode).headers(error.headers).send(error.body);
}

export function registerErrorHandling(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof PiiKeyMissingError) {
      // Another instance, or a rotation, wrote under a key this one lacks: a configuration gap, not a crash.
      request.log.error({ piiKeyId: error.keyId }, error.message);
      return send(reply, errors.unavailable());
    }
    if (error instanceof PiiCorruptError) {
      // Damaged data at rest: one line naming the record by id (never its content), and a plain 500.
      request.log.error({ record: error.record }, error.message);
      return send(reply, errors.internal());
    }
    if (isDatabaseUnavailable(error)) {
      // The store did not answer in time: the client may retry. The reason is the driver's, never a query or its values.
      request.log.error({ reason: error.message }, 'the database did not answer');
      return send(reply, errors.unavailable());
    }
    const apiError = toApiError(error, request, bodyLimit);
    if (apiError.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    return send(reply, apiError);
  });
  app.setNotFoundHandler((_request, reply) => send(reply, errors.notFound()));
}

/**
 * Answers 405 (with Allow) for methods a known path does not serve. Call before registering the
 * scope's routes; call the returned function once they are registered.
 */
export function trackMethodsForNotAllowed(scope: FastifyInstance): () => void {
  const methodsByUrl = new Map<string, Set<string>>();
  scope.addHook('onRoute', (route) => {
    const methods = methodsByUrl.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    methodsByUrl.set(route.url, methods);
  });
  return () => {
    for (const [url, served] of [...methodsByUrl]) {
      const allow = ALL_METHODS.filter((m) => served.has(m));
      const missing = ALL_METHODS.filter((m) => !served.has(m));
      if (missing.length === 0) continue;
      scope.route({
        method: missing,
        // onRoute reports full URLs; scope.route adds the scope's prefix again.
        url: url.slice(scope.prefix.length),
        schema: { hide: true },
        handler: async (request) => {
          throw errors.methodNotAllowed(request.method, allow);
        },
      });
    }
  };
}
