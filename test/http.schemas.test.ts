// Route schemas are compiled on a route's first request, not at start-up (src/http/lazy-schemas.ts): every one of
// them must still compile, and a route behaves the same on its first request as on its later ones.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compileDeferredSchemas } from '../src/http/lazy-schemas.js';
import { createTestApi, type TestApi } from './helpers/app.js';

describe('route schemas compiled on first use', () => {
  let api: TestApi;
  before(async () => {
    api = await createTestApi('sqlite');
  });
  after(() => api.close());

  it('a route validates and serializes on its first request as on the next', async () => {
    for (let i = 0; i < 2; i++) {
      const bad = await api.request({ method: 'POST', url: '/v2/users', payload: { email: 'not an email' } });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.json, { email: ['Enter a valid email address.'] });
      const anonymous = await api.request({ method: 'GET', url: '/v2/users', as: null });
      assert.equal(anonymous.status, 401);
      assert.equal(typeof (anonymous.json as { detail?: unknown }).detail, 'string');
    }
  });

  it('every schema of every route compiles, once', () => {
    const compiled = compileDeferredSchemas(api.app);
    // Dozens of routes, each with a serializer per status code it declares, and validators for bodies and queries.
    assert.ok(compiled > 50, `only ${compiled} compiles were deferred`);
    assert.equal(compileDeferredSchemas(api.app), 0, 'nothing is compiled twice');
  });
});
