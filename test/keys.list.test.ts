// GET /v2/api-keys: the caller's own client's keys, paged, the current one marked, never a secret or its hash.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { insertApiKey } from '../src/keys/keys.repository.js';
import { createApiKey, revokeApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { createTestApi, follow, STORES, type Response, type TestApi } from './helpers/app.js';

const KEY_FIELDS = ['id', 'name', 'created_at', 'revoked_at', 'current'];
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const idsOf = (res: Response): string[] => res.json.results.map((key: { id: string }) => key.id);
const sha256 = (secret: string) => createHash('sha256').update(secret).digest('hex');

for (const store of STORES) {
  describe(`GET /v2/api-keys (${store})`, () => {
    let api: TestApi;
    /** Client A's keys in creation order (api.tenant first), and client B's. */
    let a: IssuedKey[];
    let b: IssuedKey[];
    const list = (as: IssuedKey, query = '') => api.request({ method: 'GET', url: `/v2/api-keys${query}`, as });

    before(async () => {
      api = await createTestApi(store);
      const clientId = api.tenant.client_id;
      a = [api.tenant, await createApiKey(api.db, { name: 'a-ci', clientId }), await createApiKey(api.db, { name: 'a-console', clientId })];
      b = [await api.newTenant('tenant-b')];
      b.push(await createApiKey(api.db, { name: 'b-second', clientId: b[0]!.client_id }));
      assert.equal(await revokeApiKey(api.db, a[1]!.api_key_id), true);
    });
    after(() => api.close());

    it("lists the caller's client's keys, oldest first, revoked ones included, with exactly id, name, created_at, revoked_at, current", async () => {
      const started = Date.now();
      const res = await list(a[2]!);
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(Object.keys(res.json), ['next', 'previous', 'results']);
      assert.deepEqual(idsOf(res), a.map((key) => key.api_key_id));
      for (const key of res.json.results) {
        assert.deepEqual(Object.keys(key), KEY_FIELDS);
        assert.match(key.created_at, TIMESTAMP);
        assert.ok(Date.parse(key.created_at) <= started + 1000);
      }
      assert.deepEqual(
        res.json.results.map((key: { name: string; current: boolean }) => [key.name, key.current]),
        [['tenant-a', false], ['a-ci', false], ['a-console', true]],
      );
      assert.equal(res.json.results[0].revoked_at, null);
      assert.match(res.json.results[1].revoked_at, TIMESTAMP);
      assert.equal(res.json.results[2].revoked_at, null);
      assert.equal(res.json.next, null);
      assert.equal(res.json.previous, null);
    });

    it('current follows the key making the request', async () => {
      const res = await list(a[0]!);
      assert.deepEqual(res.json.results.map((key: { current: boolean }) => key.current), [true, false, false]);
    });

    it("never shows a secret or its hash, and never another client's keys", async () => {
      for (const [as, own, other] of [[a[0]!, a, b], [b[1]!, b, a]] as const) {
        const res = await list(as, '?limit=200');
        assert.equal(res.status, 200, res.body);
        assert.deepEqual(idsOf(res), own.map((key) => key.api_key_id));
        for (const key of [...a, ...b]) {
          for (const secret of [key.api_key_secret, sha256(key.api_key_secret)]) assert.equal(res.body.includes(secret), false, 'a secret or its hash was listed');
        }
        for (const key of other) assert.equal(res.body.includes(key.api_key_id), false, "another client's key was listed");
        assert.equal(res.body.includes(other[0]!.client_id), false);
      }
    });

    it("a client's cursor is invalid for another client", async () => {
      const res = await list(a[0]!, '?limit=1');
      const cursor = new URL(res.json.next).searchParams.get('cursor');
      const foreign = await list(b[0]!, `?cursor=${cursor}`);
      assert.equal(foreign.status, 400);
      assert.deepEqual(foreign.json, { detail: 'Invalid cursor' });
      // And a users cursor is not a keys cursor.
      await api.request({ method: 'POST', url: '/v2/users', as: a[0]! });
      await api.request({ method: 'POST', url: '/v2/users', as: a[0]! });
      const users = await api.request({ method: 'GET', url: '/v2/users?limit=1', as: a[0]! });
      const usersCursor = new URL(users.json.next).searchParams.get('cursor');
      assert.deepEqual((await list(a[0]!, `?cursor=${usersCursor}`)).json, { detail: 'Invalid cursor' });
    });

    it('pages with limit and cursor both ways in both orderings, keys created in one microsecond included', async () => {
      const c = await api.newTenant('many');
      const created = [c.api_key_id];
      for (let i = 0; i < 6; i++) created.push((await createApiKey(api.db, { name: `c-${i}`, clientId: c.client_id })).api_key_id);
      // Keys with one created_at (another instance's clock, a restore): the id breaks the tie.
      const tied = Array.from({ length: 5 }, () => randomBytes(16).toString('hex')).sort();
      const at = new Date(Date.now() + 60_000).toISOString().replace('Z', '123Z');
      for (const id of tied) {
        await insertApiKey(api.db, { id, client_id: c.client_id, name: 'tied', secret_hash: sha256(id), created_at: at, revoked_at: null });
      }
      created.push(...tied);
      for (const [ordering, expected] of [['', created], ['&ordering=created_at', created], ['&ordering=-created_at', [...created].reverse()]] as const) {
        const pages: string[][] = [];
        let res = await list(c, `?limit=3${ordering}`);
        assert.equal(res.json.previous, null);
        for (;;) {
          assert.equal(res.status, 200, res.body);
          pages.push(idsOf(res));
          if (res.json.next === null) break;
          res = await api.request({ method: 'GET', url: follow(res.json.next), as: c });
        }
        assert.deepEqual(pages.flat(), expected, `forward${ordering}`);
        for (let i = pages.length - 2; i >= 0; i--) {
          res = await api.request({ method: 'GET', url: follow(res.json.previous), as: c });
          assert.deepEqual(idsOf(res), pages[i], `back${ordering}, page ${i + 1}`);
        }
        assert.equal(res.json.previous, null);
      }
      const bad = await list(c, '?limit=0&ordering=id');
      assert.equal(bad.status, 400);
      assert.deepEqual(Object.keys(bad.json).sort(), ['limit', 'ordering']);
    });

    it('a revoked key, or none, gets 401', async () => {
      const revoked = await list(a[1]!);
      assert.equal(revoked.status, 401);
      const anonymous = await api.request({ method: 'GET', url: '/v2/api-keys', as: null });
      assert.equal(anonymous.status, 401);
    });
  });
}
