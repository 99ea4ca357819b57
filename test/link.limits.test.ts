import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestApi, STORES, type TestApi } from './helpers/app.js';

for (const store of STORES) {
  describe(`the Link routes have a rate limit per user (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store, { RATE_LIMIT_MAX: '3' });
    });
    after(() => api.close());

    it("a user's token spends its own budget: the 4th request is 429; another user and the API key are unaffected", async () => {
      const tokens: string[] = [];
      for (let i = 0; i < 2; i++) {
        const created = await api.request({ method: 'POST', url: '/v2/users', payload: { first_name: `U${i}` } });
        assert.equal(created.status, 200, created.body);
        tokens.push(created.json.user_token);
      }
      const asUser = (token: string) => api.request({ method: 'GET', url: '/v2/link/user', as: null, headers: { authorization: `Bearer ${token}` } });
      for (let i = 0; i < 3; i++) assert.equal((await asUser(tokens[0]!)).status, 200);
      const throttled = await asUser(tokens[0]!);
      assert.equal(throttled.status, 429);
      assert.match(throttled.json.detail, /^Request was throttled\. Expected available in \d+ seconds\.$/);
      assert.equal((await asUser(tokens[1]!)).status, 200, 'another user has a budget of its own');
      // The API key spent 2 of its 3 on the creates: one left.
      assert.equal((await api.request({ method: 'GET', url: '/v2/users' })).status, 200);
    });
  });
}
