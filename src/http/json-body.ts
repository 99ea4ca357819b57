// JSON request bodies: strict UTF-8, and an empty body counts as no body (curl sends a JSON content type without one).
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { errors, type ApiError } from '../errors.js';

// fatal: invalid UTF-8 is refused, not replaced with U+FFFD; ignoreBOM false: one BOM at the start is dropped.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
/** A charset parameter other than UTF-8's names an encoding JSON bodies here are never read in (RFC 8259 §8.1). */
const OTHER_CHARSET = /;\s*charset\s*=(?!\s*"?utf-?8"?\s*(?:;|$))/i;

/**
 * A JSON body's bytes as the API reads them (also each line of a bulk import): strict UTF-8 after an optional BOM,
 * then JSON. Undefined when it is blank; an ApiError (400 JSON parse error) otherwise.
 */
export function parseJsonBody(body: Uint8Array): unknown {
  let text: string;
  try {
    text = decoder.decode(body);
  } catch {
    throw errors.jsonParse('Request body is not valid UTF-8.');
  }
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw errors.jsonParse((error as Error).message);
  }
}

export function registerJsonBody(app: FastifyInstance): void {
  // No body at all is an empty object: real clients create users with a bare POST. Only routes that take a body
  // get the hook (decided once per route, not per request), and it is synchronous: no promise per request.
  const emptyBody = (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (request.body === undefined) request.body = {};
    done();
  };
  app.addHook('onRoute', (route) => {
    if (route.schema?.body === undefined) return;
    route.preValidation = [emptyBody, ...[route.preValidation ?? []].flat()];
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ['application/json', 'application/merge-patch+json'],
    { parseAs: 'buffer' },
    (request, body: Buffer, done) => {
      const contentType = request.headers['content-type'] ?? '';
      if (OTHER_CHARSET.test(contentType)) {
        done(errors.unsupportedMediaType(contentType.slice(0, 100)), undefined);
        return;
      }
      try {
        done(null, parseJsonBody(body));
      } catch (error) {
        done(error as ApiError, undefined);
      }
    },
  );
}
