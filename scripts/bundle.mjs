// npm run build's last step (postbuild, so that `npm run build -- ARGS` still hands ARGS to tsc): the server and
// CLI (src/main.ts) as one module, dist/main.js, with the commands it imports lazily as chunks in dist/chunks/. A
// start then reads a few files instead of ~1,100 (typebox alone is 373 modules, kysely 263), which was half of a
// cold start (bench/RESULTS.md). Only the service's own code and the pure ESM libraries below are bundled; every
// other package is imported from node_modules as before, since some find files beside their own code
// (@fastify/swagger-ui, @fastify/static, pino's transports), load native addons (better-sqlite3) or are loaded
// only when configured (pg, ioredis, OpenTelemetry).
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

const BUNDLED = ['typebox', 'kysely', 'libphonenumber-js', 'jose'];
const bundled = (path) => BUNDLED.some((name) => path === name || path.startsWith(`${name}/`));

rmSync('dist/chunks', { recursive: true, force: true });
await build({
  entryPoints: ['src/main.ts'],
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  allowOverwrite: true,
  logLevel: 'warning',
  plugins: [
    {
      name: 'packages-from-node-modules',
      setup(build) {
        // A bare specifier (a package, or node:*) that is not in BUNDLED stays an import.
        build.onResolve({ filter: /^[^./]/ }, (args) => (bundled(args.path) ? undefined : { path: args.path, external: true }));
      },
    },
  ],
});
