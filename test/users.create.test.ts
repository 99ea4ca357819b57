import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ADDRESS_KEYS,
  BIRTH_DATE_KEYS,
  countUsers,
  createTestApi,
  createUser,
  FULL_USER_BODY,
  STORES,
  USER_KEYS,
  type TestApi,
} from './helpers/app.js';

for (const store of STORES) {
  describe(`POST /v2/users (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('creates a user from an empty body and answers {user_token, id} in that order', async () => {
      const res = await api.request({ method: 'POST', url: '/v2/users', payload: {} });
      assert.equal(res.status, 200);
      assert.deepEqual(Object.keys(res.json), ['user_token', 'id']);
      assert.match(res.json.user_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    });

    it("accepts the reference page's curl exactly: a bare POST with a JSON content type and no body", async () => {
      const res = await api.request({
        method: 'POST',
        url: '/v2/users',
        headers: { accept: 'application/json', 'content-type': 'application/json' },
      });
      assert.equal(res.status, 200, res.body);
      const user = await api.request({ method: 'GET', url: `/v2/users/${res.json.id}` });
      assert.deepEqual(user.json.external_metadata, {});
      assert.equal(user.json.external_id, null);
    });

    it('accepts a POST with no content type and no body', async () => {
      const res = await api.request({ method: 'POST', url: '/v2/users' });
      assert.equal(res.status, 200, res.body);
    });

    it('stores every field of the contract and returns the User object with exactly its keys, in order', async () => {
      const id = await createUser(api, FULL_USER_BODY);
      const res = await api.request({ method: 'GET', url: `/v2/users/${id}` });
      assert.equal(res.status, 200);
      assert.deepEqual(Object.keys(res.json), USER_KEYS);
      assert.deepEqual(Object.keys(res.json.address), ADDRESS_KEYS);
      assert.deepEqual(Object.keys(res.json.birth_date), BIRTH_DATE_KEYS);
      const { open_banking: _ob, ...expected } = FULL_USER_BODY;
      assert.deepEqual(
        { ...res.json, id: undefined, created_at: undefined, items_connected: undefined, employers_connected: undefined },
        { ...expected, id: undefined, created_at: undefined, items_connected: undefined, employers_connected: undefined },
      );
      assert.deepEqual(res.json.items_connected, []);
      assert.deepEqual(res.json.employers_connected, []);
      assert.equal('open_banking' in res.json, false);
    });

    it('stores open_banking (not part of the User object)', async () => {
      const id = await createUser(api, { open_banking: FULL_USER_BODY.open_banking });
      const row = await api.db.selectFrom('users').select('open_banking').where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(JSON.parse(row.open_banking ?? 'null'), FULL_USER_BODY.open_banking);
    });

    it('stores only the known keys of open_banking', async () => {
      const id = await createUser(api, { open_banking: { end_user: { name: 'Lender', planet: 'Mars' }, extra: { a: 1 } } });
      const row = await api.db.selectFrom('users').select('open_banking').where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(JSON.parse(row.open_banking ?? 'null'), { end_user: { name: 'Lender' } });
    });

    it('returns null for every unset field and {} as the default external_metadata', async () => {
      const id = await createUser(api, {});
      const { json } = await api.request({ method: 'GET', url: `/v2/users/${id}` });
      assert.deepEqual(json.address, { city: null, line1: null, line2: null, state: null, country: null, postal_code: null });
      assert.deepEqual(json.birth_date, { year: null, month: null, day: null });
      for (const key of ['external_id', 'first_name', 'last_name', 'email', 'phone_number', 'ssn']) {
        assert.equal(json[key], null, key);
      }
      assert.deepEqual(json.external_metadata, {});
    });

    it('issues UUIDv7 ids whose first 48 bits are the created_at millisecond', async () => {
      const before = Date.now();
      const id = await createUser(api);
      const after = Date.now();
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const { json } = await api.request({ method: 'GET', url: `/v2/users/${id}` });
      assert.match(json.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      const millis = Number.parseInt(id.replace('-', '').slice(0, 12), 16);
      assert.equal(new Date(millis).toISOString().slice(0, 23), json.created_at.slice(0, 23));
      assert.ok(millis >= before && millis <= after);
    });

    it('stores phone numbers in E.164', async () => {
      for (const [input, stored] of [
        ['(212) 555-5555', '+12125555555'],
        ['212.555.5555', '+12125555555'],
        ['+44 20 7183 8750', '+442071838750'],
      ]) {
        const id = await createUser(api, { phone_number: input });
        const { json } = await api.request({ method: 'GET', url: `/v2/users/${id}` });
        assert.equal(json.phone_number, stored, input);
      }
    });

    it('accepts any JSON value as external_metadata and reads it back exactly', async () => {
      const values = [
        'a string',
        42,
        -1.5,
        true,
        false,
        null,
        [1, 'two', { three: [3] }],
        { nested: { deep: ['ünïcödé', '😀', 'line\nbreak', '\u2028'] }, empty: {}, list: [] },
      ];
      for (const value of values) {
        const id = await createUser(api, { external_metadata: value });
        const { json } = await api.request({ method: 'GET', url: `/v2/users/${id}` });
        assert.deepEqual(json.external_metadata, value);
      }
    });

    it('ignores unknown and read-only fields and never stores them', async () => {
      const id = await createUser(api, {
        id: '00000000-0000-7000-8000-000000000000',
        created_at: '2000-01-01T00:00:00.000000Z',
        items_connected: ['item_1'],
        employers_connected: ['Evil Corp'],
        is_admin: true,
        address: { planet: 'Mars', city: 'Paris' },
      });
      assert.notEqual(id, '00000000-0000-7000-8000-000000000000');
      const { json } = await api.request({ method: 'GET', url: `/v2/users/${id}` });
      assert.deepEqual(json.items_connected, []);
      assert.deepEqual(json.employers_connected, []);
      assert.notEqual(json.created_at, '2000-01-01T00:00:00.000000Z');
      assert.equal(json.address.city, 'Paris');
      assert.equal('planet' in json.address, false);
      assert.equal('is_admin' in json, false);
    });

    it('accepts null for every field on create', async () => {
      const before = await countUsers(api.db);
      const res = await api.request({
        method: 'POST',
        url: '/v2/users',
        payload: Object.fromEntries(Object.keys(FULL_USER_BODY).map((k) => [k, null])),
      });
      assert.equal(res.status, 200, res.body);
      assert.equal(await countUsers(api.db), before + 1);
      const { json } = await api.request({ method: 'GET', url: `/v2/users/${res.json.id}` });
      assert.equal(json.external_metadata, null);
      assert.equal(json.address.city, null);
    });
  });
}
