import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { revokeApiKey } from '../src/keys/keys.service.js';
import { createTestApi, STORES, type TestApi } from './helpers/app.js';

for (const store of STORES) {
  describe(`remembered API keys (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store, { API_KEY_CACHE_MS: '400' });
    });
    after(() => api.close());

    it('a revocation applies within API_KEY_CACHE_MS; a wrong secret never passes, remembered or not', async () => {
      const key = await api.newTenant('cached');
      const list = (as = key) => api.request({ method: 'GET', url: '/v2/users', as });
      assert.equal((await list()).status, 200);
      const wrong = { ...key, api_key_secret: `${key.api_key_secret}x` };
      assert.equal((await list(wrong)).status, 401);
      assert.equal(await revokeApiKey(api.db, key.api_key_id), true);
      // Still remembered: accepted until the entry expires.
      assert.equal((await list()).status, 200);
      assert.equal((await list(wrong)).status, 401);
      await sleep(450);
      const refused = await list();
      assert.equal(refused.status, 401);
      assert.deepEqual(refused.json, { detail: 'Invalid username/password.' });
    });
  });
}
