// Bearer authentication of the Link routes with a user token: it reaches its own user, of its own client, only.
import type { FastifyRequest } from 'fastify';
import { errors } from '../errors.js';
import type { UserTokens } from '../tokens/tokens.js';
import { canonicalUserId } from '../users/users.ids.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** On the Link routes: the user the token was minted for. */
    linkUserId: string;
  }
}

/** onRequest hook: sets request.clientId and request.linkUserId from a valid token of an existing user. */
export function bearerAuth(tokens: UserTokens, userExists: (clientId: string, userId: string) => Promise<boolean>) {
  return async (request: FastifyRequest): Promise<void> => {
    const parts = request.headers.authorization?.split(' ').filter(Boolean) ?? [];
    // An API key (Basic) is not a credential here: as if none were given.
    if (parts.length === 0 || parts[0]?.toLowerCase() !== 'bearer') throw errors.bearerNotAuthenticated();
    if (parts.length === 1) throw errors.bearerFailed('Invalid token header. No credentials provided.');
    if (parts.length > 2) throw errors.bearerFailed('Invalid token header. Token string should not contain spaces.');
    const claims = await tokens.verify(parts[1] ?? '');
    const userId = claims && canonicalUserId(claims.user_id);
    // Expired, tampered, another issuer's, or its user deleted: one answer, so a token reveals nothing.
    if (!claims || !userId || !(await userExists(claims.client_id, userId))) throw errors.bearerFailed();
    request.clientId = claims.client_id;
    request.linkUserId = userId;
  };
}
