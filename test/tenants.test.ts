import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createApiKey, revokeApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import {
  basicAuth,
  countUsers,
  createTestApi,
  createUser,
  snapshotUsers,
  STORES,
  type Response,
  type TestApi,
} from './helpers/app.js';

const NOT_FOUND = { detail: 'Not found.' };
const NOT_PROVIDED = { detail: 'Authentication credentials were not provided.' };
const INVALID_CREDENTIALS = { detail: 'Invalid username/password.' };

/** One request per endpoint, so that authentication is proven everywhere, not on one route. */
const endpoints = (id: string) =>
  [
    { method: 'POST', url: '/v2/users', payload: { first_name: 'Mallory' } },
    { method: 'GET', url: '/v2/users' },
    { method: 'GET', url: `/v2/users/${id}` },
    { method: 'PATCH', url: `/v2/users/${id}`, payload: { first_name: 'Mallory' } },
    { method: 'DELETE', url: `/v2/users/${id}` },
    { method: 'POST', url: '/v2/user-tokens', payload: { user: id } },
    { method: 'POST', url: '/v2/user-tokens/introspect', payload: { user_token: 'x.y.z' } },
  ] as const;

/** A well-formed UUIDv7 that names no user. */
const MISSING_ID = '0190a4e2-0000-7000-8000-000000000000';

function assertUnauthorized(res: Response, body: { detail: string }, label: string): void {
  assert.equal(res.status, 401, `${label}: ${res.body}`);
  assert.deepEqual(res.json, body, label);
  const challenge = res.headers['www-authenticate'];
  assert.equal(typeof challenge, 'string', `${label}: www-authenticate header missing`);
  assert.match(challenge as string, /^Basic\b/, label);
}

const ids = (res: Response): string[] => res.json.results.map((u: { id: string }) => u.id);

for (const store of STORES) {
  describe(`tenant isolation (${store})`, () => {
    let api: TestApi;
    let tenantB: IssuedKey;
    /** Users of tenant A (api.tenant). */
    let aliceId: string;
    let aliceIds: string[];
    /** A user of tenant B. */
    let bobId: string;

    before(async () => {
      api = await createTestApi(store);
      tenantB = await api.newTenant('tenant-b');
      assert.notEqual(tenantB.client_id, api.tenant.client_id);
      aliceId = await createUser(api, {
        first_name: 'Alice',
        email: 'alice@example.com',
        external_id: 'shared-external-id',
        address: { city: 'Paris', country: 'FR' },
        external_metadata: { owner: 'A' },
      });
      aliceIds = [aliceId];
      for (let i = 0; i < 4; i++) aliceIds.push(await createUser(api, { external_id: `a-${i}` }));
      bobId = await createUser(api, { first_name: 'Bob', external_id: 'b-only' }, tenantB);
    });
    after(() => api.close());

    it('each tenant reads its own user', async () => {
      const a = await api.request({ method: 'GET', url: `/v2/users/${aliceId}` });
      assert.equal(a.status, 200);
      assert.equal(a.json.first_name, 'Alice');
      const b = await api.request({ method: 'GET', url: `/v2/users/${bobId}`, as: tenantB });
      assert.equal(b.status, 200);
      assert.equal(b.json.first_name, 'Bob');
    });

    it("GET /v2/users/{id} of another tenant's user is 404 Not found., whatever the id's case", async () => {
      for (const [id, as] of [
        [aliceId, tenantB],
        [aliceId.toUpperCase(), tenantB],
        [bobId, api.tenant],
      ] as const) {
        const res = await api.request({ method: 'GET', url: `/v2/users/${id}`, as });
        assert.equal(res.status, 404, res.body);
        assert.deepEqual(res.json, NOT_FOUND);
        assert.equal(res.body.includes('Alice') || res.body.includes('Bob'), false);
      }
    });

    it("PATCH of another tenant's user is 404 and changes nothing", async () => {
      const before = await snapshotUsers(api.db);
      for (const body of [{ first_name: 'Mallory' }, { external_metadata: null, address: null }, {}]) {
        const res = await api.request({ method: 'PATCH', url: `/v2/users/${aliceId}`, payload: body, as: tenantB });
        assert.equal(res.status, 404, res.body);
        assert.deepEqual(res.json, NOT_FOUND);
      }
      const back = await api.request({ method: 'PATCH', url: `/v2/users/${bobId}`, payload: { first_name: 'Eve' } });
      assert.equal(back.status, 404, back.body);
      assert.deepEqual(back.json, NOT_FOUND);
      assert.equal(await snapshotUsers(api.db), before);
      const a = await api.request({ method: 'GET', url: `/v2/users/${aliceId}` });
      assert.equal(a.json.first_name, 'Alice');
      assert.deepEqual(a.json.external_metadata, { owner: 'A' });
      assert.equal(a.json.address.city, 'Paris');
    });

    it("DELETE of another tenant's user is 404 and deletes nothing", async () => {
      const before = await snapshotUsers(api.db);
      const count = await countUsers(api.db);
      for (const [id, as] of [
        [aliceId, tenantB],
        [bobId, api.tenant],
      ] as const) {
        const res = await api.request({ method: 'DELETE', url: `/v2/users/${id}`, as });
        assert.equal(res.status, 404, res.body);
        assert.deepEqual(res.json, NOT_FOUND);
      }
      assert.equal(await countUsers(api.db), count);
      assert.equal(await snapshotUsers(api.db), before);
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${aliceId}` })).status, 200);
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${bobId}`, as: tenantB })).status, 200);
    });

    it("GET /v2/users never lists another tenant's users", async () => {
      const a = await api.request({ method: 'GET', url: '/v2/users?limit=200' });
      assert.equal(a.status, 200);
      assert.deepEqual(ids(a), aliceIds);
      const b = await api.request({ method: 'GET', url: '/v2/users?limit=200', as: tenantB });
      assert.equal(b.status, 200);
      assert.deepEqual(ids(b), [bobId]);
      assert.equal(b.json.next, null);
      assert.equal(b.json.previous, null);
    });

    it("the external_id filter never matches another tenant's users", async () => {
      const none = await api.request({ method: 'GET', url: '/v2/users?external_id=shared-external-id', as: tenantB });
      assert.equal(none.status, 200);
      assert.deepEqual(none.json.results, []);
      const none2 = await api.request({ method: 'GET', url: '/v2/users?external_id=b-only' });
      assert.deepEqual(none2.json.results, []);

      // The same external_id in both tenants: each sees only its own.
      const bobTwin = await createUser(api, { external_id: 'shared-external-id' }, tenantB);
      const a = await api.request({ method: 'GET', url: '/v2/users?external_id=shared-external-id' });
      assert.deepEqual(ids(a), [aliceId]);
      const b = await api.request({ method: 'GET', url: '/v2/users?external_id=shared-external-id', as: tenantB });
      assert.deepEqual(ids(b), [bobTwin]);
      const del = await api.request({ method: 'DELETE', url: `/v2/users/${bobTwin}`, as: tenantB });
      assert.equal(del.status, 204);
    });

    it("POST /v2/user-tokens for another tenant's user is 400 Invalid pk", async () => {
      for (const [id, as] of [
        [aliceId, tenantB],
        [bobId, api.tenant],
      ] as const) {
        const res = await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: id }, as });
        assert.equal(res.status, 400, res.body);
        assert.deepEqual(res.json, { user: [`Invalid pk "${id}" - object does not exist.`] });
      }
      const own = await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: aliceId } });
      assert.equal(own.status, 200, own.body);
      assert.equal(typeof own.json.user_token, 'string');
    });

    it('a paging cursor issued to one tenant is "Invalid cursor" for another', async () => {
      const first = await api.request({ method: 'GET', url: '/v2/users?limit=2' });
      assert.equal(first.status, 200);
      assert.equal(typeof first.json.next, 'string');
      const next = new URL(first.json.next as string);
      const path = `${next.pathname}${next.search}`;

      const own = await api.request({ method: 'GET', url: path });
      assert.equal(own.status, 200, own.body);
      assert.deepEqual(ids(own), aliceIds.slice(2, 4));

      const stolen = await api.request({ method: 'GET', url: path, as: tenantB });
      assert.equal(stolen.status, 400, stolen.body);
      assert.deepEqual(stolen.json, { detail: 'Invalid cursor' });

      // Also with the filter and limit repeated beside it.
      const repeated = await api.request({ method: 'GET', url: `${path}&limit=2`, as: tenantB });
      assert.equal(repeated.status, 400, repeated.body);
      assert.deepEqual(repeated.json, { detail: 'Invalid cursor' });
    });

    it('a second key of the same client sees the same users', async () => {
      const sibling = await createApiKey(api.db, { name: 'tenant-a-second', clientId: api.tenant.client_id });
      assert.equal(sibling.client_id, api.tenant.client_id);
      assert.notEqual(sibling.api_key_id, api.tenant.api_key_id);
      const res = await api.request({ method: 'GET', url: `/v2/users/${aliceId}`, as: sibling });
      assert.equal(res.status, 200);
      assert.equal(res.json.id, aliceId);
      const list = await api.request({ method: 'GET', url: '/v2/users?limit=200', as: sibling });
      assert.deepEqual(ids(list), aliceIds);
    });
  });

  describe(`authentication (${store})`, () => {
    let api: TestApi;
    let userId: string;

    before(async () => {
      api = await createTestApi(store);
      userId = await createUser(api, { first_name: 'Alice' });
    });
    after(() => api.close());

    /** Sends `authorization` (or none) to every endpoint and expects 401 `body`, with nothing stored or changed. */
    async function expectRejectedEverywhere(authorization: string | undefined, body: { detail: string }) {
      const before = await snapshotUsers(api.db);
      for (const endpoint of endpoints(userId)) {
        const label = `${endpoint.method} ${endpoint.url} with ${JSON.stringify(authorization)}`;
        const res = await api.request({
          ...endpoint,
          as: null,
          headers: authorization === undefined ? {} : { authorization },
        });
        assertUnauthorized(res, body, label);
      }
      assert.equal(await snapshotUsers(api.db), before);
    }

    it('accepts the right key on every endpoint (the control for the cases below)', async () => {
      const expected = [200, 200, 404, 404, 404, 400, 200];
      const statuses = [];
      for (const endpoint of endpoints(MISSING_ID)) statuses.push((await api.request({ ...endpoint })).status);
      assert.deepEqual(statuses, expected);
      const res = await api.request({ method: 'GET', url: `/v2/users/${userId}` });
      assert.equal(res.status, 200);
      assert.equal(res.json.first_name, 'Alice');
    });

    it('no Authorization header: 401 "Authentication credentials were not provided."', async () => {
      await expectRejectedEverywhere(undefined, NOT_PROVIDED);
    });

    it('a Bearer (or other non-Basic) header: 401 "Authentication credentials were not provided."', async () => {
      await expectRejectedEverywhere('Bearer some-token', NOT_PROVIDED);
      await expectRejectedEverywhere(`Token ${api.tenant.api_key_secret}`, NOT_PROVIDED);
      await expectRejectedEverywhere('', NOT_PROVIDED);
    });

    it('a wrong secret: 401 "Invalid username/password."', async () => {
      const wrong = { ...api.tenant, api_key_secret: `${api.tenant.api_key_secret.slice(0, -1)}x` };
      assert.notEqual(wrong.api_key_secret, api.tenant.api_key_secret);
      await expectRejectedEverywhere(basicAuth(wrong), INVALID_CREDENTIALS);
      await expectRejectedEverywhere(basicAuth({ ...api.tenant, api_key_secret: '' }), INVALID_CREDENTIALS);
      // The key id alone, with no ":" and no password.
      await expectRejectedEverywhere(`Basic ${Buffer.from(api.tenant.api_key_id).toString('base64')}`, INVALID_CREDENTIALS);
    });

    it('an unknown key id: 401 "Invalid username/password."', async () => {
      await expectRejectedEverywhere(
        basicAuth({ api_key_id: 'ffffffffffffffffffffffffffffffff', api_key_secret: api.tenant.api_key_secret }),
        INVALID_CREDENTIALS,
      );
      // The client id is not a key id.
      await expectRejectedEverywhere(
        basicAuth({ api_key_id: api.tenant.client_id, api_key_secret: api.tenant.api_key_secret }),
        INVALID_CREDENTIALS,
      );
      // Secret and id swapped.
      await expectRejectedEverywhere(
        basicAuth({ api_key_id: api.tenant.api_key_secret, api_key_secret: api.tenant.api_key_id }),
        INVALID_CREDENTIALS,
      );
    });

    it('"Basic" alone: 401 "Invalid basic header. No credentials provided."', async () => {
      await expectRejectedEverywhere('Basic', { detail: 'Invalid basic header. No credentials provided.' });
      await expectRejectedEverywhere('basic ', { detail: 'Invalid basic header. No credentials provided.' });
    });

    it('credentials that are not base64: 401 "Invalid basic header. Credentials not correctly base64 encoded."', async () => {
      const detail = 'Invalid basic header. Credentials not correctly base64 encoded.';
      for (const credentials of ['!!!not-base64!!!', `${api.tenant.api_key_id}:${api.tenant.api_key_secret}`, 'abc']) {
        await expectRejectedEverywhere(`Basic ${credentials}`, { detail });
      }
    });

    it('a revoked key is 401 from then on; other keys of its client keep working', async () => {
      const key = await createApiKey(api.db, { name: 'to-revoke', clientId: api.tenant.client_id });
      const ok = await api.request({ method: 'GET', url: `/v2/users/${userId}`, as: key });
      assert.equal(ok.status, 200, ok.body);

      assert.equal(await revokeApiKey(api.db, key.api_key_id), true);
      await expectRejectedEverywhere(basicAuth(key), INVALID_CREDENTIALS);
      assert.equal(await revokeApiKey(api.db, key.api_key_id), false, 'revoking twice reports nothing revoked');

      const other = await api.request({ method: 'GET', url: `/v2/users/${userId}` });
      assert.equal(other.status, 200);
    });

    it('authentication comes before body parsing: a malformed body without credentials is 401, not 400', async () => {
      const res = await api.request({
        method: 'POST',
        url: '/v2/users',
        as: null,
        headers: { 'content-type': 'application/json' },
        payload: '{"first_name": ',
      });
      assertUnauthorized(res, NOT_PROVIDED, 'malformed body');
    });

    it('stores no plaintext secret: only a hash, and the secret appears in no column', async () => {
      const keys = [api.tenant, await createApiKey(api.db, { name: 'another' })];
      const rows = await api.db.selectFrom('api_keys').selectAll().execute();
      const clients = await api.db.selectFrom('clients').selectAll().execute();
      assert.ok(rows.length >= keys.length);
      for (const key of keys) {
        const row = rows.find((r) => r.id === key.api_key_id);
        assert.ok(row, `row for ${key.api_key_id}`);
        assert.ok(row.secret_hash.length > 0);
        assert.notEqual(row.secret_hash, key.api_key_secret);
        // Not the secret in another reversible encoding either.
        const secretBytes = Buffer.from(key.api_key_secret);
        for (const encoded of [
          key.api_key_secret,
          secretBytes.toString('hex'),
          secretBytes.toString('base64'),
          Buffer.from(key.api_key_secret, 'base64url').toString('hex'),
          Buffer.from(key.api_key_secret, 'base64url').toString('base64'),
        ]) {
          for (const stored of [...rows, ...clients]) {
            for (const [column, value] of Object.entries(stored)) {
              assert.equal(
                String(value).toLowerCase().includes(encoded.toLowerCase()),
                false,
                `the secret (or an encoding of it) is stored in ${column}`,
              );
            }
          }
        }
      }
      const hashes = new Set(rows.map((r) => r.secret_hash));
      assert.equal(hashes.size, rows.length, 'every key has its own hash');
      const secrets = new Set(keys.map((k) => k.api_key_secret));
      assert.equal(secrets.size, keys.length, 'every key has its own secret');
      for (const key of keys) assert.ok(key.api_key_secret.length >= 32, 'secrets carry enough randomness');
    });
  });
}
