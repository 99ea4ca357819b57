// The typed client (@users-api/client) through a whole flow against a real server: what an integrator's backend does.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLinkClient, etagOf, isUsersApiError, UsersApiError, type UsersApiClient } from '@users-api/client';
import { countUsers, createTestApi, STORES, type TestApi } from './helpers/app.js';
import { clientOf, serve } from './helpers/client.js';

/** Runs `run`, which must throw a UsersApiError; answers it. */
async function apiError(run: () => Promise<unknown>): Promise<UsersApiError> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof UsersApiError, `not a UsersApiError: ${String(error)}`);
    return error;
  }
  assert.fail('no error');
}

for (const store of STORES) {
  describe(`typed client (${store})`, () => {
    let api: TestApi;
    let client: UsersApiClient;
    before(async () => {
      api = await createTestApi(store);
      client = await clientOf(api);
    });
    after(() => api.close());

    it('creates a user; the same Idempotency-Key replays the first answer: one user', async () => {
      const before = await countUsers(api.db);
      const first = await client.users.create({ first_name: 'Sarah', external_id: 'replay' }, { idempotencyKey: 'client-replay-1' });
      const again = await client.users.create({ first_name: 'Sarah', external_id: 'replay' }, { idempotencyKey: 'client-replay-1' });
      assert.deepEqual(again, first);
      assert.equal(await countUsers(api.db), before + 1);
      const reused = await apiError(() => client.users.create({ first_name: 'Other' }, { idempotencyKey: 'client-replay-1' }));
      assert.equal(reused.status, 422);
      assert.match(reused.detail ?? '', /Idempotency-Key was already used/);
    });

    it('idempotent: true sends a random key and, when the answer is lost, sends the create again with it: one user', async () => {
      const keys: (string | null)[] = [];
      let lost = 0;
      const flaky = await clientOf(api, {
        retryDelayMs: 10,
        fetch: async (request) => {
          keys.push(request.headers.get('idempotency-key'));
          const response = await fetch(request);
          if (lost++ === 0) throw new TypeError('fetch failed'); // the user was created; its answer never arrives
          return response;
        },
      });
      const before = await countUsers(api.db);
      const created = await flaky.users.create({ external_id: 'lost-answer' }, { idempotent: true });
      assert.equal(keys.length, 2);
      assert.match(keys[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(keys[1], keys[0], 'the retry carries the same key');
      assert.equal(await countUsers(api.db), before + 1);
      assert.deepEqual((await client.users.findByExternalId('lost-answer')).map((u) => u.id), [created.id]);
      // Without a key nothing is retried: the error reaches the caller.
      lost = 0;
      await assert.rejects(flaky.users.create({}), /fetch failed/);
    });

    it('gets a user with its ETag; lists through the async iterator over several pages; looks up by external_id', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push((await client.users.create({ external_id: 'walk', first_name: `W${i}` })).id);
      const user = await client.users.get(ids[0]!);
      assert.equal(user.first_name, 'W0');
      assert.equal(etagOf(user), '"v1"');

      const walked: string[] = [];
      for await (const u of client.users.list({ external_id: 'walk', limit: 3 })) walked.push(u.id);
      assert.deepEqual(walked, ids);
      const pages: number[] = [];
      for await (const page of client.users.list({ external_id: 'walk', limit: 3, ordering: '-created_at' }).pages()) pages.push(page.results.length);
      assert.deepEqual(pages, [3, 3, 1]);
      assert.deepEqual((await client.users.list({ external_id: 'walk', ordering: '-created_at', limit: 2 }).toArray()).map((u) => u.id), [...ids].reverse());

      assert.deepEqual((await client.users.findByExternalId('walk')).map((u) => u.id), ids);
      assert.deepEqual(await client.users.findByExternalId('nobody'), []);
    });

    it('updates with If-Match from a fetched user; a stale one is a typed 412 and changes nothing', async () => {
      const { id } = await client.users.create({ first_name: 'Ada' });
      const read = await client.users.get(id);
      const updated = await client.users.update(id, { last_name: 'Lovelace' }, { ifMatch: read });
      assert.equal(updated.last_name, 'Lovelace');
      assert.equal(etagOf(updated), '"v2"');
      const stale = await apiError(() => client.users.update(id, { last_name: 'Byron' }, { ifMatch: read }));
      assert.equal(stale.status, 412);
      assert.equal(stale.detail, 'Precondition failed: the user has changed since the ETag in If-Match.');
      assert.ok(isUsersApiError(stale, 412));
      assert.equal((await client.users.get(id)).last_name, 'Lovelace');
      await assert.rejects(client.users.update(id, {}, { ifMatch: { ...updated } }), /ETag is unknown/);
      // A delete with a stale version is refused too; with the current one it goes.
      assert.equal((await apiError(() => client.users.delete(id, { ifMatch: read }))).status, 412);
      await client.users.delete(id, { ifMatch: updated });
      const gone = await apiError(() => client.users.get(id));
      assert.deepEqual([gone.status, gone.body], [404, { detail: 'Not found.' }]);
      assert.ok(gone.requestId);
    });

    it('a DRF field error is typed: its fields, nested ones by a dotted path', async () => {
      const bad = await apiError(() => client.users.create({ email: 'not-an-email', address: { country: 'XX' } }));
      assert.equal(bad.status, 400);
      assert.equal(bad.detail, undefined);
      assert.deepEqual(bad.messages('email'), ['Enter a valid email address.']);
      assert.deepEqual(bad.messages('address.country'), ['"XX" is not a valid choice.']);
      assert.deepEqual(bad.messages('first_name'), []);
      assert.deepEqual(Object.keys(bad.fieldErrors).sort(), ['address', 'email']);
      assert.match(bad.message, /^400 \{"email"/);
    });

    it('a user token, and the Link side recording an account that the API-key side then sees', async () => {
      const { id } = await client.users.create({ first_name: 'Sarah', email: 'sarah@email.com' });
      const { user_token } = await client.userTokens.create(id, { idempotent: true });
      assert.deepEqual(await client.userTokens.introspect(user_token).then((t) => [t.active, t.user_id]), [true, id]);

      const baseUrl = await serve(api);
      const link = createLinkClient({ baseUrl, userToken: user_token });
      assert.deepEqual(await link.user(), { id, first_name: 'Sarah', last_name: null, email: 'sarah@email.com', phone_number: null });
      const account = await link.accounts.create({ item: 'item_000012345', employers: ['Walmart'] }, { idempotent: true });
      assert.equal(account.connection.status, 'connecting');
      const connected = await link.accounts.report(account.id, { connection: { status: 'connected' } });
      assert.equal(connected.connection.status, 'connected');
      assert.deepEqual((await link.accounts.list().toArray()).map((a) => a.id), [account.id]);

      assert.deepEqual((await client.accounts.list({ user: id }).toArray()).map((a) => [a.id, a.connection.status]), [[account.id, 'connected']]);
      assert.equal((await client.accounts.get(account.id)).item, 'item_000012345');
      const user = await client.users.get(id);
      assert.deepEqual([user.items_connected, user.employers_connected], [['item_000012345'], ['Walmart']]);
      const refused = await apiError(() => createLinkClient({ baseUrl, userToken: `${user_token}x` }).user());
      assert.deepEqual([refused.status, refused.detail], [401, 'Token is invalid or expired.']);
    });

    it('lists the API keys, the calling one marked current', async () => {
      const keys = await client.apiKeys.list().toArray();
      assert.deepEqual(keys.map((k) => [k.id, k.current]), [[api.tenant.api_key_id, true]]);
      const wrong = await apiError(async () => (await clientOf(api, { as: { ...api.tenant, api_key_secret: 'wrong' } })).users.get(api.tenant.api_key_id));
      assert.deepEqual([wrong.status, wrong.detail], [401, 'Invalid username/password.']);
    });
  });
}
