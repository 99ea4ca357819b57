// JSON request bodies: strict UTF-8, and an empty body counts as no body (curl sends a JSON content type without one).
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
/** A charset parameter other than UTF-8's names an encoding JSON bodies here are never read in (RFC 8259 §8.1). */
const OTHER_CHARSET = /;\s*charset\s*=(?!\s*"?utf-?8"?\s*(?:;|$))/i;

export function registerJsonBody(app: FastifyInstance): void {
  // No body at all is an empty object: real clients create users with a bare POST.
  app.addHook('preValidation', async (request) => {
    if (request.body === undefined) request.body = {};
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
      let text: string;
      try {
        text = decoder.decode(body);
      } catch {
        done(errors.jsonParse('Request body is not valid UTF-8.'), undefined);
        return;
      }
      if (text.trim() === '') {
        done(null, undefined);
        return;
      }
      try {
        done(null, JSON.parse(text));
      } catch (error) {
        done(errors.jsonParse((error as Error).message), undefined);
      }
    },
  );
}
