import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestApi, createUser, follow, INVALID_LIMITS, STORES, type TestApi } from './helpers/app.js';

for (const store of STORES) {
  describe(`GET /v2/users (${store})`, () => {
    let api: TestApi;
    const list = async (query = '') => api.request({ method: 'GET', url: `/v2/users${query}` });

    before(async () => {
      api = await createTestApi(store);
      for (let i = 0; i < 25; i++) await createUser(api, { external_id: i % 5 === 0 ? 'group-a' : `u-${i}` });
    });
    after(() => api.close());

    it('returns {next, previous, results}, 10 by default, oldest first', async () => {
      const res = await list();
      assert.equal(res.status, 200);
      assert.deepEqual(Object.keys(res.json), ['next', 'previous', 'results']);
      assert.equal(res.json.results.length, 10);
      assert.equal(res.json.previous, null);
      assert.match(res.json.next, /^http:\/\/localhost(:80)?\/v2\/users\?cursor=[\w.-]+$/);
      const ids = res.json.results.map((u: { id: string }) => u.id);
      assert.deepEqual(ids, [...ids].sort());
    });

    it("works with the reference page's curl headers", async () => {
      const res = await api.request({
        method: 'GET',
        url: '/v2/users?limit=2',
        headers: { accept: 'application/json', 'content-type': 'application/json' },
      });
      assert.equal(res.status, 200);
      assert.equal(res.json.results.length, 2);
    });

    it('treats a limit above 200 as 200', async () => {
      for (let i = 0; i < 190; i++) await createUser(api, { external_id: 'bulk' });
      const res = await list('?limit=1000');
      assert.equal(res.status, 200);
      assert.equal(res.json.results.length, 200);
      assert.notEqual(res.json.next, null);
    });

    it('rejects a limit that is not a positive integer', async () => {
      for (const [limit, message] of INVALID_LIMITS) {
        const res = await list(`?limit=${limit}`);
        assert.equal(res.status, 400, limit);
        assert.deepEqual(res.json, { limit: [message] });
      }
    });

    it("takes a limit the way DRF's IntegerField does: sign, spaces and a .0 tail", async () => {
      for (let i = 0; i < 3; i++) await createUser(api, { external_id: 'few' });
      for (const limit of ['2', '+2', '%202%20', '2.0', '2.00']) {
        const res = await list(`?limit=${limit}`);
        assert.equal(res.status, 200, limit);
        assert.equal(res.json.results.length, 2, limit);
      }
    });

    it('filters by exact external_id', async () => {
      const res = await list('?external_id=group-a&limit=200');
      assert.equal(res.json.results.length, 5);
      for (const user of res.json.results) assert.equal(user.external_id, 'group-a');
      assert.equal((await list('?external_id=GROUP-A')).json.results.length, 0);
      assert.equal((await list('?external_id=group')).json.results.length, 0);
      assert.equal(res.json.next, null);
    });

    it('seals limit and filter in the cursor, and still works when they are repeated beside it', async () => {
      const first = await list('?external_id=group-a&limit=2');
      assert.equal(first.json.results.length, 2);
      const second = await api.request({ method: 'GET', url: follow(first.json.next) });
      assert.equal(second.json.results.length, 2);
      for (const user of second.json.results) assert.equal(user.external_id, 'group-a');
      const repeated = await api.request({ method: 'GET', url: `${follow(first.json.next)}&limit=2&external_id=group-a` });
      assert.equal(repeated.status, 200);
      assert.deepEqual(repeated.json.results, second.json.results);
      // Each link carries a freshly sealed cursor; both lead to the same pages.
      for (const link of ['next', 'previous'] as const) {
        const [fromRepeated, fromSecond] = await Promise.all(
          [repeated, second].map((page) => api.request({ method: 'GET', url: follow(page.json[link]) })),
        );
        assert.deepEqual(fromRepeated?.json.results, fromSecond?.json.results, link);
      }
    });

    it('seals the cursor: its bytes show neither the filter, the position nor the JSON keys', async () => {
      const first = await list('?external_id=group-a&limit=2');
      const second = await api.request({ method: 'GET', url: follow(first.json.next) });
      const position = first.json.results[1].id;
      for (const link of [first.json.next, second.json.previous]) {
        const cursor = new URL(link).searchParams.get('cursor') ?? '';
        const bytes = Buffer.from(cursor, 'base64url').toString('latin1');
        for (const needle of ['group-a', position, position.replaceAll('-', ''), '"d"', '"k"', '"l"', '"e"', '{"']) {
          assert.equal(bytes.includes(needle), false, `${JSON.stringify(needle)} can be read in the cursor ${cursor}`);
          assert.equal(cursor.includes(needle), false, `${JSON.stringify(needle)} appears in the cursor ${cursor}`);
        }
      }
      // A random IV per cursor: the same position sealed twice gives unrelated cursors.
      const again = await list('?external_id=group-a&limit=2');
      assert.notEqual(new URL(again.json.next).search, new URL(first.json.next).search);
    });

    it('walks back with previous links; previous is null on the first page and next on the last', async () => {
      const pages: string[][] = [];
      let res = await list('?limit=7&external_id=bulk');
      assert.equal(res.json.previous, null);
      for (;;) {
        pages.push(res.json.results.map((u: { id: string }) => u.id));
        if (res.json.next === null) break;
        res = await api.request({ method: 'GET', url: follow(res.json.next) });
      }
      assert.equal(pages.flat().length, 190);
      assert.equal(new Set(pages.flat()).size, 190);
      // Back from the last page, each previous page is the same page as on the way forward.
      for (let i = pages.length - 2; i >= 0; i--) {
        assert.notEqual(res.json.previous, null);
        res = await api.request({ method: 'GET', url: follow(res.json.previous) });
        assert.deepEqual(res.json.results.map((u: { id: string }) => u.id), pages[i]);
      }
      assert.equal(res.json.previous, null);
    });

    it('rejects a tampered or made-up cursor with 400 "Invalid cursor"', async () => {
      const first = await list('?external_id=group-a&limit=2');
      const cursor = new URL(first.json.next).searchParams.get('cursor') ?? '';
      assert.equal((await list(`?cursor=${cursor}`)).status, 200);
      const bytes = Buffer.from(cursor, 'base64url');
      assert.equal(bytes.toString('base64url'), cursor, 'a cursor is canonical base64url');
      const encode = (b: Buffer) => b.toString('base64url');
      // Every bit of the sealed bytes, flipped on its own: version, IV, ciphertext and tag alike.
      const flipped = Array.from({ length: bytes.length * 8 }, (_, bit) => {
        const copy = Buffer.from(bytes);
        copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        return encode(copy);
      });
      // The last character with each other value: those that change no byte (unused low bits) are not canonical.
      const lastChar = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_']
        .filter((c) => c !== cursor.at(-1))
        .map((c) => cursor.slice(0, -1) + c);
      const forged = encode(Buffer.from(JSON.stringify({ d: 'n', k: '0', l: 200 })));
      const bad = [
        'garbage',
        '',
        forged,
        `${forged}.${cursor}`,
        `${cursor}.x`,
        `${cursor}=`,
        `${cursor}A`,
        cursor.slice(1),
        cursor.slice(0, -1),
        encode(bytes.subarray(0, -1)),
        encode(bytes.subarray(0, 29)),
        encode(Buffer.concat([bytes, Buffer.alloc(1)])),
        '%%%',
        ...flipped,
        ...lastChar,
      ];
      for (const tampered of bad) {
        const res = await list(`?cursor=${encodeURIComponent(tampered)}`);
        assert.equal(res.status, 400, tampered);
        assert.deepEqual(res.json, { detail: 'Invalid cursor' }, tampered);
      }
    });

    it('a walk of 1,000 users finds each exactly once while others are created and deleted', async () => {
      const walker = await api.newTenant('walker');
      const as = walker;
      const stable = new Set<string>();
      const volatile: string[] = [];
      for (let i = 0; i < 1000; i++) {
        stable.add(await createUser(api, { external_id: 'stable' }, as));
        if (i % 10 === 0) volatile.push(await createUser(api, { external_id: 'volatile' }, as));
      }
      const seen = new Map<string, number>();
      let url: string | null = '/v2/users?limit=37';
      let pages = 0;
      while (url) {
        const res = await api.request({ method: 'GET', url, as });
        assert.equal(res.status, 200);
        for (const user of res.json.results) seen.set(user.id, (seen.get(user.id) ?? 0) + 1);
        // Churn between pages: delete users ahead of and behind the walk, and add new ones.
        const victim = volatile.splice(pages % 2 === 0 ? 0 : -1, 1)[0];
        if (victim) assert.equal((await api.request({ method: 'DELETE', url: `/v2/users/${victim}`, as })).status, 204);
        volatile.push(await createUser(api, { external_id: 'volatile' }, as));
        url = res.json.next ? follow(res.json.next) : null;
        pages++;
      }
      for (const id of stable) assert.equal(seen.get(id), 1, `stable user ${id} seen ${seen.get(id) ?? 0} times`);
      for (const [id, count] of seen) assert.equal(count, 1, `${id} seen ${count} times`);
      assert.ok(pages >= 1000 / 37);
    });

    it('builds links from X-Forwarded-* only when TRUST_PROXY is set', async () => {
      const headers = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com' };
      const untrusted = await api.request({ method: 'GET', url: '/v2/users?limit=1', headers });
      assert.match(untrusted.json.next, /^http:\/\/localhost/);
      const proxied = await createTestApi(store, { TRUST_PROXY: 'true' });
      try {
        await createUser(proxied);
        await createUser(proxied);
        const res = await proxied.request({ method: 'GET', url: '/v2/users?limit=1', headers });
        assert.match(res.json.next, /^https:\/\/api\.example\.com\/v2\/users\?cursor=/);
      } finally {
        await proxied.close();
      }
    });
  });
}
