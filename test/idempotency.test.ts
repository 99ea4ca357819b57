import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { countUsers, createTestApi, createUser, STORES, type TestApi } from './helpers/app.js';

for (const store of STORES) {
  describe(`Idempotency-Key (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    const create = (key: string | undefined, body: object = { first_name: 'Retry' }, as = api.tenant) =>
      api.request({ method: 'POST', url: '/v2/users', payload: body, headers: key ? { 'idempotency-key': key } : {}, as });

    it('a retried create returns the first response and creates nothing more', async () => {
      const before = await countUsers(api.db);
      const first = await create('create-1');
      const again = await create('create-1');
      assert.equal(first.status, 200);
      assert.equal(again.status, 200);
      assert.deepEqual(again.json, first.json);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(first.headers['idempotent-replayed'], undefined);
      assert.equal(await countUsers(api.db), before + 1);
    });

    it('the same key with a different body is 422 and acts on nothing', async () => {
      await create('create-2', { first_name: 'A' });
      const before = await countUsers(api.db);
      const res = await create('create-2', { first_name: 'B' });
      assert.equal(res.status, 422);
      assert.match(res.json.detail, /Idempotency-Key was already used with a different request/);
      assert.equal(await countUsers(api.db), before);
    });

    it('a key is scoped to the endpoint and to the client', async () => {
      const id = await createUser(api);
      const token = await api.request({
        method: 'POST',
        url: '/v2/user-tokens',
        payload: { user: id },
        headers: { 'idempotency-key': 'shared-key' },
      });
      assert.equal(token.status, 200);
      // The same key on the other endpoint is another request.
      assert.equal((await create('shared-key')).status, 422);
      // Another client's key space is its own.
      const other = await api.newTenant('other');
      const theirs = await create('shared-key', { first_name: 'Retry' }, other);
      assert.equal(theirs.status, 200);
    });

    it('POST /v2/user-tokens replays the same token', async () => {
      const id = await createUser(api);
      const send = () =>
        api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: id }, headers: { 'idempotency-key': `tok-${id}` } });
      const first = await send();
      const second = await send();
      assert.equal(first.json.user_token, second.json.user_token);
      const fresh = await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: id } });
      assert.notEqual(fresh.json.user_token, first.json.user_token);
    });

    it('a failed request is not stored: a retry runs again', async () => {
      const bad = await api.request({
        method: 'POST',
        url: '/v2/user-tokens',
        payload: { user: '018051aa-f7a9-a0db-2f38-6cfa325e9d69' },
        headers: { 'idempotency-key': 'fails-first' },
      });
      assert.equal(bad.status, 400);
      const rows = await api.db.selectFrom('idempotency_keys').selectAll().where('key', '=', 'fails-first').execute();
      assert.equal(rows.length, 0);
    });

    it('rejects keys longer than 255 characters or with control characters', async () => {
      const before = await countUsers(api.db);
      for (const key of ['x'.repeat(256), 'tab\there']) {
        const res = await create(key);
        assert.equal(res.status, 400, key);
        assert.match(res.json.detail, /Idempotency-Key must be/);
      }
      assert.equal((await create('k'.repeat(255))).status, 200);
      assert.equal(await countUsers(api.db), before + 1);
    });

    it('stores the response encrypted (it holds a user token)', async () => {
      const first = await create('encrypted-1');
      const row = await api.db.selectFrom('idempotency_keys').selectAll().where('key', '=', 'encrypted-1').executeTakeFirstOrThrow();
      assert.ok(row.response_body);
      assert.ok(!row.response_body.includes(first.json.user_token));
      assert.ok(!row.response_body.includes(first.json.id));
    });

    it('many concurrent creates with one key make exactly one user', async () => {
      const before = await countUsers(api.db);
      const results = await Promise.all(Array.from({ length: 25 }, () => create('concurrent-1', { external_id: 'once' })));
      for (const res of results) assert.equal(res.status, 200, res.body);
      assert.equal(new Set(results.map((r) => r.json.id)).size, 1);
      assert.equal(await countUsers(api.db), before + 1);
      const listed = await api.request({ method: 'GET', url: '/v2/users?external_id=once' });
      assert.equal(listed.json.results.length, 1);
    });

    it('a failure while storing the key, after the user was inserted, leaves no user; the retry creates one', async () => {
      // The idempotency record is the last write of the create's transaction: make it fail.
      const [install, uninstall] =
        store === 'sqlite'
          ? [
              sql`create trigger fail_key before insert on idempotency_keys begin select raise(abort, 'injected failure'); end`,
              sql`drop trigger fail_key`,
            ]
          : [
              sql`create function fail_key() returns trigger language plpgsql as $$ begin raise exception 'injected failure'; end $$;
                  create trigger fail_key before insert on idempotency_keys for each row execute function fail_key()`,
              sql`drop trigger fail_key on idempotency_keys; drop function fail_key()`,
            ];
      const before = await countUsers(api.db);
      await install.execute(api.db);
      let failed;
      try {
        failed = await create('injected-1', { external_id: 'injected' });
      } finally {
        await uninstall.execute(api.db);
      }
      assert.equal(failed.status, 500, failed.body);
      assert.deepEqual(failed.json, { detail: 'A server error occurred.' });
      assert.equal(await countUsers(api.db), before, 'the user insert was undone with the key');
      const retry = await create('injected-1', { external_id: 'injected' });
      assert.equal(retry.status, 200, retry.body);
      assert.equal(retry.headers['idempotent-replayed'], undefined, 'nothing was stored to replay');
      assert.equal(await countUsers(api.db), before + 1);
      const replay = await create('injected-1', { external_id: 'injected' });
      assert.equal(replay.json.id, retry.json.id);
      assert.equal(replay.headers['idempotent-replayed'], 'true');
    });

    it('a claim without a response (left by a crashed earlier version) does not block the key', async () => {
      await api.db
        .insertInto('idempotency_keys')
        .values({
          client_id: api.tenant.client_id,
          key: 'orphaned-claim',
          scope: 'POST /v2/users',
          request_hash: 'x',
          status_code: null,
          response_body: null,
          created_at: new Date().toISOString(),
        })
        .execute();
      const res = await create('orphaned-claim');
      assert.equal(res.status, 200, res.body);
      assert.equal((await create('orphaned-claim')).json.id, res.json.id);
    });
  });
}
