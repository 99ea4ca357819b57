import type { FastifyRequest } from 'fastify';

/** Scheme and host the client used; X-Forwarded-* count only when TRUST_PROXY allows (Fastify's trustProxy). */
export function baseUrl(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}
