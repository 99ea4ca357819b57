// Builds the console (console/src) into dist/console, served at /console by src/http/console.ts.
import { fileURLToPath } from 'node:url';
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  plugins: [preact()],
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    // Every file a hashed one under assets/ (no data: URLs, which the page's CSP does not allow).
    assetsInlineLimit: 0,
  },
  // `npm run dev:console` next to `npm run dev`: the page with hot reload, the API proxied to the server.
  server: { proxy: { '/v2': 'http://127.0.0.1:8080' } },
});
