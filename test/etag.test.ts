import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestApi, createUser, STORES, type TestApi } from './helpers/app.js';

for (const store of STORES) {
  describe(`ETag and If-Match (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    const get = (id: string) => api.request({ method: 'GET', url: `/v2/users/${id}` });
    const patch = (id: string, body: object, ifMatch?: string) =>
      api.request({ method: 'PATCH', url: `/v2/users/${id}`, payload: body, headers: ifMatch ? { 'if-match': ifMatch } : {} });

    it('GET and PATCH return an ETag that changes with every write', async () => {
      const id = await createUser(api);
      const first = await get(id);
      assert.match(String(first.headers.etag), /^"v\d+"$/);
      const patched = await patch(id, { first_name: 'x' });
      assert.notEqual(patched.headers.etag, first.headers.etag);
      assert.equal((await get(id)).headers.etag, patched.headers.etag);
    });

    it('PATCH with a stale If-Match is 412 and changes nothing; with the current one it applies', async () => {
      const id = await createUser(api, { first_name: 'orig' });
      const stale = String((await get(id)).headers.etag);
      const current = String((await patch(id, { first_name: 'second' })).headers.etag);
      const refused = await patch(id, { first_name: 'third' }, stale);
      assert.equal(refused.status, 412);
      assert.match(refused.json.detail, /^Precondition failed/);
      assert.equal((await get(id)).json.first_name, 'second');
      const applied = await patch(id, { first_name: 'third' }, current);
      assert.equal(applied.status, 200);
      assert.equal(applied.json.first_name, 'third');
      assert.equal((await patch(id, { last_name: 'any' }, '*')).status, 200);
      assert.equal((await patch(id, { last_name: 'list' }, `"v999", ${String(applied.headers.etag)}, ${String((await get(id)).headers.etag)}`)).status, 200);
    });

    it('DELETE with a stale If-Match is 412 and keeps the user; with the current one it deletes', async () => {
      const id = await createUser(api);
      const stale = String((await get(id)).headers.etag);
      const current = String((await patch(id, { first_name: 'changed' })).headers.etag);
      const refused = await api.request({ method: 'DELETE', url: `/v2/users/${id}`, headers: { 'if-match': stale } });
      assert.equal(refused.status, 412);
      assert.equal((await get(id)).status, 200);
      const deleted = await api.request({ method: 'DELETE', url: `/v2/users/${id}`, headers: { 'if-match': current } });
      assert.equal(deleted.status, 204);
      assert.equal((await get(id)).status, 404);
      const gone = await api.request({ method: 'DELETE', url: `/v2/users/${id}`, headers: { 'if-match': current } });
      assert.equal(gone.status, 404);
    });

    it('many parallel PATCHes with one If-Match: exactly one wins, the others get 412', async () => {
      const id = await createUser(api);
      const etag = String((await get(id)).headers.etag);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => patch(id, { first_name: `f-${i}`, last_name: `l-${i}` }, etag)),
      );
      const winners = results.filter((r) => r.status === 200);
      assert.equal(winners.length, 1, results.map((r) => r.status).join(','));
      assert.equal(results.filter((r) => r.status === 412).length, 19);
      const final = (await get(id)).json;
      assert.equal(final.first_name, winners[0]?.json.first_name);
      assert.equal(final.last_name, winners[0]?.json.last_name);
    });

    it('without If-Match, behaviour stays as before: every PATCH applies', async () => {
      const id = await createUser(api);
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => patch(id, { external_id: `e-${i}` })));
      assert.ok(results.every((r) => r.status === 200));
    });
  });
}
