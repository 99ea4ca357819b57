// HTTP Basic authentication with API keys (username = api_key_id, password = api_key_secret).
import type { FastifyRequest } from 'fastify';
import { errors, type BasicChallenge } from '../errors.js';
import type { ApiKeyVerifier } from '../keys/keys.service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant of the API key that authenticated this request. */
    clientId: string;
    /** The API key that authenticated this request. */
    apiKeyId: string;
  }
}

/**
 * A `Basic` challenge makes a browser open its own login dialog over the page. A script that says so
 * (`X-Requested-With: XMLHttpRequest`, as the Console sends on every request) handles its 401 itself, so it is
 * challenged as `XBasic`, a scheme no browser knows: the same credentials, and a 401 that still names its scheme.
 */
function challengeFor(request: FastifyRequest): BasicChallenge {
  const requestedWith = request.headers['x-requested-with'];
  return typeof requestedWith === 'string' && requestedWith.toLowerCase() === 'xmlhttprequest' ? 'XBasic' : 'Basic';
}

/** onRequest hook: sets request.clientId or fails with DRF's BasicAuthentication messages. */
export function basicAuth(keys: ApiKeyVerifier) {
  return async (request: FastifyRequest): Promise<void> => {
    const scheme = challengeFor(request);
    const failed = (detail?: string) => errors.authenticationFailed(detail, scheme);
    const header = request.headers.authorization;
    const parts = header?.split(' ').filter(Boolean) ?? [];
    if (parts.length === 0 || parts[0]?.toLowerCase() !== 'basic') throw errors.notAuthenticated(scheme);
    if (parts.length === 1) throw failed('Invalid basic header. No credentials provided.');
    if (parts.length > 2) throw failed('Invalid basic header. Credentials string should not contain spaces.');
    const encoded = parts[1] ?? '';
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
      throw failed('Invalid basic header. Credentials not correctly base64 encoded.');
    }
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const keyId = colon === -1 ? decoded : decoded.slice(0, colon);
    const secret = colon === -1 ? '' : decoded.slice(colon + 1);
    const clientId = await keys.verify(keyId, secret);
    if (clientId === undefined) throw failed();
    request.clientId = clientId;
    request.apiKeyId = keyId;
  };
}
