// `ordering` on every paged list: created_at (the default) and -created_at, sealed in the cursor, walked both ways.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IssuedKey } from '../src/keys/keys.service.js';
import { PiiCipher } from '../src/pii/pii.cipher.js';
import { resolveSecrets } from '../src/secrets.js';
import { WebhooksRepository } from '../src/webhooks/webhooks.repository.js';
import { createTestApi, createUser, follow, STORES, type Response, type TestApi } from './helpers/app.js';
import { attempt, createLinkUser, type LinkUser } from './helpers/link.js';

const ORDERING_ERROR = (value: string) => ({
  ordering: [`"${value}" is not a valid choice. Use created_at (oldest first, the default) or -created_at (newest first).`],
});

const idsOf = (res: Response): string[] => res.json.results.map((row: { id: string }) => row.id);

for (const store of STORES) {
  describe(`ordering of the paged lists (${store})`, () => {
    let api: TestApi;
    let tenant: IssuedKey;
    /** Users of `tenant` in creation order, and those with external_id "even". */
    const users: string[] = [];
    const evens: string[] = [];
    let linkUsers: LinkUser[] = [];
    /** Accounts in creation order: all of them, and the first link user's. */
    const accounts: string[] = [];
    const firstUsersAccounts: string[] = [];
    const webhooks: string[] = [];

    /** A GET as `tenant` (or with `headers` instead, for the Link side); asserts 200. */
    async function get(url: string, headers?: Record<string, string>): Promise<Response> {
      const res = headers ? await api.request({ method: 'GET', url, as: null, headers }) : await api.request({ method: 'GET', url, as: tenant });
      assert.equal(res.status, 200, `${url}: ${res.body}`);
      return res;
    }

    /**
     * Walks `url` along `next` to the end, asserting it yields `expected` in order, then back along `previous`
     * to the first page, asserting each page is the one seen on the way forward.
     */
    async function assertWalk(url: string, expected: string[], headers?: Record<string, string>): Promise<void> {
      const pages: string[][] = [];
      let res = await get(url, headers);
      assert.equal(res.json.previous, null, `${url}: the first page has no previous`);
      for (;;) {
        pages.push(idsOf(res));
        if (res.json.next === null) break;
        res = await get(follow(res.json.next), headers);
      }
      assert.deepEqual(pages.flat(), expected, `${url}: the walk forward`);
      assert.ok(pages.length > 2, `${url}: too few pages to test the walk`);
      for (let i = pages.length - 2; i >= 0; i--) {
        assert.notEqual(res.json.previous, null, `${url}: page ${i + 2} has a previous`);
        res = await get(follow(res.json.previous), headers);
        assert.deepEqual(idsOf(res), pages[i], `${url}: page ${i + 1} on the way back`);
      }
      assert.equal(res.json.previous, null, `${url}: back on the first page`);
    }

    before(async () => {
      api = await createTestApi(store, { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_DELIVERY: 'false' });
      tenant = await api.newTenant('ordering');
      for (let i = 0; i < 7; i++) {
        const res = await api.request({
          method: 'POST',
          url: '/v2/webhooks',
          as: tenant,
          payload: { events: ['users.created'], name: `hook-${i}`, url: `http://127.0.0.1:9/hook-${i}` },
        });
        assert.equal(res.status, 201, res.body);
        webhooks.push(res.json.id);
      }
      for (let i = 0; i < 23; i++) {
        const id = await createUser(api, { external_id: i % 2 === 0 ? 'even' : 'odd' }, tenant);
        users.push(id);
        if (i % 2 === 0) evens.push(id);
      }
      linkUsers = [await createLinkUser(api, {}, tenant), await createLinkUser(api, {}, tenant)];
      users.push(...linkUsers.map((user) => user.id));
      for (let i = 0; i < 11; i++) {
        const user = linkUsers[i % 3 === 0 ? 0 : 1]!;
        const res = await attempt(api, user, { item: `item_${i}` });
        accounts.push(res.json.id);
        if (user === linkUsers[0]) firstUsersAccounts.push(res.json.id);
      }
      // No instance delivers here (WEBHOOK_DELIVERY=false): the events become deliveries only when fanned out.
      const outbox = new WebhooksRepository(api.db, new PiiCipher(resolveSecrets(api.config).piiKeys));
      while ((await outbox.fanOut(100)) > 0);
    });
    after(() => api.close());

    it('the default is created_at: oldest first, the same pages as ordering=created_at', async () => {
      const byDefault = await get('/v2/users?limit=200');
      assert.deepEqual(idsOf(byDefault), users);
      assert.deepEqual(idsOf(await get('/v2/users?limit=200&ordering=created_at')), users);
      const created = await get('/v2/users?limit=200');
      assert.deepEqual(
        created.json.results.map((u: { created_at: string }) => u.created_at),
        created.json.results.map((u: { created_at: string }) => u.created_at).sort(),
      );
    });

    it('-created_at lists newest first', async () => {
      const res = await get('/v2/users?limit=200&ordering=-created_at');
      assert.deepEqual(idsOf(res), [...users].reverse());
      const times = res.json.results.map((u: { created_at: string }) => u.created_at);
      assert.deepEqual(times, [...times].sort().reverse());
    });

    it('GET /v2/users walks next and previous in both orderings, with and without a filter', async () => {
      await assertWalk('/v2/users?limit=4', users);
      await assertWalk('/v2/users?limit=4&ordering=created_at', users);
      await assertWalk('/v2/users?limit=4&ordering=-created_at', [...users].reverse());
      await assertWalk('/v2/users?limit=3&external_id=even&ordering=-created_at', [...evens].reverse());
      await assertWalk('/v2/users?limit=3&ordering=-created_at&external_id=even', [...evens].reverse());
    });

    it('GET /v2/accounts and GET /v2/link/accounts walk in both orderings', async () => {
      await assertWalk('/v2/accounts?limit=3', accounts);
      await assertWalk('/v2/accounts?limit=3&ordering=-created_at', [...accounts].reverse());
      await assertWalk(`/v2/accounts?limit=1&user=${linkUsers[0]!.id}&ordering=-created_at`, [...firstUsersAccounts].reverse());
      const bearer = { authorization: `Bearer ${linkUsers[0]!.token}` };
      await assertWalk('/v2/link/accounts?limit=1&ordering=-created_at', [...firstUsersAccounts].reverse(), bearer);
      await assertWalk('/v2/link/accounts?limit=1', firstUsersAccounts, bearer);
    });

    it('GET /v2/webhooks and GET /v2/webhooks/{id}/deliveries walk in both orderings', async () => {
      await assertWalk('/v2/webhooks?limit=2', webhooks);
      await assertWalk('/v2/webhooks?limit=2&ordering=-created_at', [...webhooks].reverse());
      const deliveries = idsOf(await get(`/v2/webhooks/${webhooks[3]}/deliveries?limit=200`));
      assert.equal(deliveries.length, users.length, 'one users.created delivery per user');
      await assertWalk(`/v2/webhooks/${webhooks[3]}/deliveries?limit=5&ordering=-created_at`, [...deliveries].reverse());
    });

    it('the ordering is sealed in the cursor: beside a cursor, the request\'s own is ignored, as a filter is', async () => {
      const first = await get('/v2/users?limit=5&ordering=-created_at');
      assert.deepEqual(idsOf(first), users.slice(-5).reverse());
      const next = await get(follow(first.json.next));
      assert.deepEqual(idsOf(next), users.slice(-10, -5).reverse());
      for (const extra of ['&ordering=created_at', '&ordering=-created_at', '&ordering=created_at&external_id=odd&limit=2']) {
        const repeated = await get(`${follow(first.json.next)}${extra}`);
        assert.deepEqual(idsOf(repeated), idsOf(next), extra);
      }
      // An oldest-first walk stays oldest first when -created_at is given beside its cursor.
      const ascending = await get('/v2/users?limit=5');
      assert.deepEqual(idsOf(await get(`${follow(ascending.json.next)}&ordering=-created_at`)), users.slice(5, 10));
    });

    it('an empty page past the end links back to the last rows in either ordering', async () => {
      const walker = await api.newTenant('short');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await createUser(api, {}, walker));
      const as = (url: string) => api.request({ method: 'GET', url, as: walker });
      // Newest first: [4, 3], [2, 1], [0]. Delete 0, then follow the second page's next.
      const one = await as('/v2/users?limit=2&ordering=-created_at');
      const two = await as(follow(one.json.next));
      assert.deepEqual(idsOf(two), [ids[2], ids[1]]);
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/users/${ids[0]}`, as: walker })).status, 204);
      const empty = await as(follow(two.json.next));
      assert.equal(empty.status, 200, empty.body);
      assert.deepEqual(idsOf(empty), []);
      assert.equal(empty.json.next, null);
      const back = await as(follow(empty.json.previous));
      assert.deepEqual(idsOf(back), [ids[2], ids[1]]);
      assert.equal(back.json.next, null, 'nothing is left after the deleted oldest user');
      // A user created meanwhile is the newest: it comes before the first page, never after the last.
      const newest = await createUser(api, {}, walker);
      const top = await as(follow(back.json.previous));
      assert.deepEqual(idsOf(top), [ids[4], ids[3]]);
      const above = await as(follow(top.json.previous));
      assert.deepEqual(idsOf(above), [newest]);
      assert.equal(above.json.previous, null);
    });

    it('any other value is 400 {"ordering": [...]} naming the values there are, with or without a cursor', async () => {
      const cursor = new URL((await get('/v2/users?limit=1')).json.next).searchParams.get('cursor');
      const bad = ['created', 'CREATED_AT', 'id', '-id', '', ' created_at', 'created_at,id', '+created_at', '--created_at', 'created_at;'];
      for (const path of ['/v2/users', '/v2/accounts', '/v2/webhooks', `/v2/webhooks/${webhooks[0]}/deliveries`]) {
        for (const value of bad) {
          for (const query of [`ordering=${encodeURIComponent(value)}`, `ordering=${encodeURIComponent(value)}&cursor=${cursor}`]) {
            const res = await api.request({ method: 'GET', url: `${path}?${query}`, as: tenant });
            assert.equal(res.status, 400, `${path}?${query}: ${res.body}`);
            assert.deepEqual(res.json, ORDERING_ERROR(value), `${path}?${query}`);
          }
        }
      }
      const twice = await api.request({ method: 'GET', url: '/v2/users?ordering=created_at&ordering=-created_at', as: tenant });
      assert.equal(twice.status, 400, twice.body);
      assert.deepEqual(Object.keys(twice.json), ['ordering']);
      const bearer = await api.request({
        method: 'GET',
        url: '/v2/link/accounts?ordering=newest',
        as: null,
        headers: { authorization: `Bearer ${linkUsers[0]!.token}` },
      });
      assert.equal(bearer.status, 400);
      assert.deepEqual(bearer.json, ORDERING_ERROR('newest'));
    });

    it('is declared on every paged list in the OpenAPI document', async () => {
      const doc = (await api.request({ method: 'GET', url: '/openapi.json', as: null })).json;
      for (const path of ['/v2/users', '/v2/accounts', '/v2/link/accounts', '/v2/webhooks', '/v2/webhooks/{id}/deliveries']) {
        const ordering = doc.paths[path].get.parameters.find((p: { name: string }) => p.name === 'ordering');
        assert.ok(ordering, `${path} declares no ordering`);
        assert.equal(ordering.in, 'query');
        assert.notEqual(ordering.required, true);
        assert.deepEqual(ordering.schema.enum, ['created_at', '-created_at'], path);
        assert.match(ordering.description ?? ordering.schema.description, /newest first/);
      }
    });
  });
}
