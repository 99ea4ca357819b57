// The console's built files (console/ → dist/console by `npm run build`) at /console, for client-side routing.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyStaticOptions } from '@fastify/static';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify';

/**
 * Required, not imported: the /docs page (@fastify/swagger-ui) requires the same module, so the server loads it once,
 * and as CommonJS; an ESM import of it costs ~25 ms more CPU at every cold start (measured).
 */
const fastifyStatic = createRequire(import.meta.url)('@fastify/static') as FastifyPluginAsync<FastifyStaticOptions>;

/**
 * dist/console at the package root, the nearest directory above this module with a package.json: src/http under
 * tsx, dist/ or dist/chunks in the bundle (scripts/bundle.mjs).
 */
export const CONSOLE_DIR = join(packageRoot(dirname(fileURLToPath(import.meta.url))), 'dist', 'console');

function packageRoot(dir: string): string {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, 'package.json'))) return at;
    if (dirname(at) === at) return dir;
  }
}

/** Vite puts every file but index.html under assets/ with a hash of its content in its name: they never change. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** index.html names the current assets: revalidated on every load (ETag), so a new build is seen at once. */
const REVALIDATE = 'no-cache';

export async function registerConsole(app: FastifyInstance, dir = CONSOLE_DIR): Promise<void> {
  const index = join(dir, 'index.html');
  if (!existsSync(index)) {
    // A server run from source without a build: say what to do rather than a bare 404.
    const notBuilt = async (_request: unknown, reply: FastifyReply) =>
      reply.code(404).send({ detail: 'The console is not built: run `npm run build`, then restart the server.' });
    app.get('/console', { schema: { hide: true } }, notBuilt);
    app.get('/console/*', { schema: { hide: true } }, notBuilt);
    return;
  }
  await app.register(async (scope) => {
    // The wildcard route reads no directory at start.
    await scope.register(fastifyStatic, {
      root: join(dir, 'assets'),
      prefix: '/console/assets/',
      index: false,
      cacheControl: false,
      // Also called for the page sent below, which is the one file outside assets/.
      setHeaders: (reply, path) => reply.header('cache-control', path === index ? REVALIDATE : IMMUTABLE),
    });
    // /console and every client-side route below it is the page; a missing asset stays a 404 (above).
    const page = async (_request: unknown, reply: FastifyReply) =>
      reply.sendFile('index.html', dir, { cacheControl: false });
    scope.get('/console', { schema: { hide: true } }, page);
    scope.get('/console/*', { schema: { hide: true } }, page);
  });
}
