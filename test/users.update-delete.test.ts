import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestApi, createUser, STORES, type TestApi } from './helpers/app.js';

for (const store of STORES) {
  describe(`GET, PATCH and DELETE /v2/users/{id} (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    const get = async (id: string) => (await api.request({ method: 'GET', url: `/v2/users/${id}` })).json;
    const patch = (id: string, body: unknown) =>
      api.request({ method: 'PATCH', url: `/v2/users/${id}`, payload: body as object });

    it("applies the reference page's PATCH curl exactly", async () => {
      const id = await createUser(api, { external_metadata: { a: 1 }, external_id: 'keep' });
      const res = await api.request({
        method: 'PATCH',
        url: `/v2/users/${id}`,
        headers: { accept: 'application/json', 'content-type': 'application/json' },
        payload: '{"external_metadata": {}}',
      });
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(res.json.external_metadata, {});
      assert.equal(res.json.external_id, 'keep');
      assert.deepEqual(await get(id), res.json);
    });

    it('replaces the fields present and leaves the others', async () => {
      const id = await createUser(api, { first_name: 'Sarah', last_name: 'Longfield', email: 'sarah@email.com' });
      const res = await patch(id, { first_name: 'Sara', phone_number: '2125555555' });
      assert.equal(res.status, 200);
      assert.equal(res.json.first_name, 'Sara');
      assert.equal(res.json.last_name, 'Longfield');
      assert.equal(res.json.email, 'sarah@email.com');
      assert.equal(res.json.phone_number, '+12125555555');
    });

    it('null clears a field; nested objects merge key by key; external_metadata is replaced whole', async () => {
      const id = await createUser(api, {
        email: 'a@example.com',
        address: { city: 'Boston', state: 'MA', country: 'US' },
        birth_date: { year: 1980, month: 5, day: 17 },
        external_metadata: { a: 1, b: { c: 2 } },
      });
      const res = await patch(id, {
        email: null,
        address: { city: 'Cambridge', state: null, line1: '1 Kendall Sq' },
        birth_date: { day: 18 },
        external_metadata: { b: { d: 3 } },
      });
      assert.equal(res.status, 200, res.body);
      assert.equal(res.json.email, null);
      assert.deepEqual(res.json.address, {
        city: 'Cambridge',
        line1: '1 Kendall Sq',
        line2: null,
        state: null,
        country: 'US',
        postal_code: null,
      });
      assert.deepEqual(res.json.birth_date, { year: 1980, month: 5, day: 18 });
      assert.deepEqual(res.json.external_metadata, { b: { d: 3 } });
      assert.deepEqual(await get(id), res.json);
    });

    it('null for a nested object clears all of it', async () => {
      const id = await createUser(api, { address: { city: 'Boston' }, birth_date: { year: 1980 } });
      const res = await patch(id, { address: null, birth_date: null, external_metadata: null });
      assert.deepEqual(Object.values(res.json.address), [null, null, null, null, null, null]);
      assert.deepEqual(res.json.birth_date, { year: null, month: null, day: null });
      assert.equal(res.json.external_metadata, null);
    });

    it('merges open_banking key by key', async () => {
      const id = await createUser(api, { open_banking: { end_user: { name: 'Lender', city: 'Boston' } } });
      await patch(id, { open_banking: { end_user: { city: null, zip: '02110' } } });
      const row = await api.db.selectFrom('users').select('open_banking').where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(JSON.parse(row.open_banking ?? 'null'), { end_user: { name: 'Lender', zip: '02110' } });
    });

    it('checks the calendar against the merged birth date', async () => {
      const id = await createUser(api, { birth_date: { year: 1990, month: 2, day: 28 } });
      const res = await patch(id, { birth_date: { day: 30 } });
      assert.equal(res.status, 400);
      assert.deepEqual(res.json, { birth_date: { non_field_errors: ['Enter a valid date.'] } });
      assert.deepEqual((await get(id)).birth_date, { year: 1990, month: 2, day: 28 });
    });

    it('an empty PATCH changes nothing and returns the user', async () => {
      const id = await createUser(api, { first_name: 'Same' });
      const before = await get(id);
      const res = await api.request({ method: 'PATCH', url: `/v2/users/${id}`, headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, before);
    });

    it('ignores read-only fields on PATCH', async () => {
      const id = await createUser(api);
      const before = await get(id);
      const res = await patch(id, { id: 'x', created_at: '1999-01-01T00:00:00.000000Z', items_connected: ['i'] });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, before);
    });

    it('accepts application/merge-patch+json', async () => {
      const id = await createUser(api);
      const res = await api.request({
        method: 'PATCH',
        url: `/v2/users/${id}`,
        headers: { 'content-type': 'application/merge-patch+json' },
        payload: '{"external_id":"merged"}',
      });
      assert.equal(res.status, 200, res.body);
      assert.equal(res.json.external_id, 'merged');
    });

    it('404 "Not found." for unknown and malformed ids of any length, on every method', async () => {
      const ids = ['018051aa-f7a9-a0db-2f38-6cfa325e9d69', 'nope', '1', 'x'.repeat(99), 'x'.repeat(5000), '%20', "'; DROP TABLE users;--"];
      for (const raw of ids) {
        const url = `/v2/users/${encodeURIComponent(raw)}`;
        for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
          const res = await api.request({ method, url, ...(method === 'PATCH' ? { payload: {} } : {}) });
          assert.equal(res.status, 404, `${method} ${raw.slice(0, 20)} -> ${res.status}`);
          assert.deepEqual(res.json, { detail: 'Not found.' });
        }
      }
    });

    it('accepts an id in upper case', async () => {
      const id = await createUser(api, { first_name: 'Upper' });
      const res = await api.request({ method: 'GET', url: `/v2/users/${id.toUpperCase()}` });
      assert.equal(res.status, 200);
      assert.equal(res.json.id, id);
    });

    it('DELETE answers 204 with an empty body; the user is gone; a second delete is 404', async () => {
      const id = await createUser(api, { external_id: 'to-delete' });
      const res = await api.request({
        method: 'DELETE',
        url: `/v2/users/${id}`,
        headers: { accept: 'application/json', 'content-type': 'application/json' },
      });
      assert.equal(res.status, 204);
      assert.equal(res.body, '');
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${id}` })).status, 404);
      const listed = await api.request({ method: 'GET', url: '/v2/users?external_id=to-delete' });
      assert.deepEqual(listed.json.results, []);
      const again = await api.request({ method: 'DELETE', url: `/v2/users/${id}` });
      assert.equal(again.status, 404);
      assert.deepEqual(again.json, { detail: 'Not found.' });
      const rows = await api.db.selectFrom('users').select('id').where('id', '=', id).execute();
      assert.equal(rows.length, 0);
    });

    it('concurrent PATCHes of one user each apply whole: the result is one of the written states', async () => {
      const id = await createUser(api);
      const writes = Array.from({ length: 20 }, (_, i) => ({
        first_name: `first-${i}`,
        last_name: `last-${i}`,
        address: { city: `city-${i}`, state: `state-${i}` },
      }));
      const results = await Promise.all(writes.map((w) => patch(id, w)));
      for (const res of results) assert.equal(res.status, 200);
      const final = await get(id);
      const i = Number(final.first_name.split('-')[1]);
      assert.equal(final.last_name, `last-${i}`);
      assert.equal(final.address.city, `city-${i}`);
      assert.equal(final.address.state, `state-${i}`);
    });
  });
}
