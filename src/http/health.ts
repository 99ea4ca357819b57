// Liveness and readiness for load balancers and orchestrators; no auth, not part of the public API document.
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { NEVER_SHED } from './limits.js';

/** Liveness answers while the process runs, under load too; readiness is shed with the API (see limits.ts). */
export function registerHealth(app: FastifyInstance, db: Db): void {
  app.get('/healthz', { schema: { hide: true }, config: NEVER_SHED }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (request, reply) => {
    try {
      await sql`select 1`.execute(db);
      return { status: 'ok' };
    } catch (error) {
      request.log.warn({ err: error }, 'readiness check: database unreachable');
      return reply.code(503).send({ detail: 'Database unreachable.' });
    }
  });
}
