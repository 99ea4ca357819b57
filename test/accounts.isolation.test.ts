import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IssuedKey } from '../src/keys/keys.service.js';
import { createTestApi, follow, STORES, type TestApi } from './helpers/app.js';
import {
  accountRows,
  arraysOf,
  attempt,
  connect,
  createLinkUser,
  fail,
  idsOf,
  linkRequest,
  report,
  type AccountJson,
  type LinkUser,
} from './helpers/link.js';

const NOT_FOUND = { detail: 'Not found.' };

for (const store of STORES) {
  describe(`accounts: isolation between clients and between users (${store})`, () => {
    let api: TestApi;
    let tenantB: IssuedKey;
    /** Tenant A's users and accounts. */
    let alice: LinkUser;
    let carol: LinkUser;
    let aliceAccounts: AccountJson[];
    let carolAccount: AccountJson;
    /** Tenant B's. */
    let bob: LinkUser;
    let bobAccount: AccountJson;

    const snapshot = async () => JSON.stringify(await accountRows(api.db));

    before(async () => {
      api = await createTestApi(store);
      tenantB = await api.newTenant('tenant-b');
      alice = await createLinkUser(api, { first_name: 'Alice', email: 'alice@example.com' });
      carol = await createLinkUser(api, { first_name: 'Carol', email: 'carol@example.com' });
      bob = await createLinkUser(api, { first_name: 'Bob', email: 'bob@example.com' }, tenantB);
      aliceAccounts = [
        await connect(api, alice, 'shared_item', ['Alice Employer']),
        await fail(api, alice, 'alice_failed'),
        (await attempt(api, alice, { item: 'alice_connecting' })).json,
      ];
      carolAccount = await connect(api, carol, 'carol_item', ['Carol Employer']);
      bobAccount = await connect(api, bob, 'shared_item', ['Bob Employer']);
    });
    after(() => api.close());

    it("another client's API key sees none of these accounts, by list, filter, id or cursor", async () => {
      const own = await api.request({ method: 'GET', url: '/v2/accounts?limit=200', as: tenantB });
      assert.equal(own.status, 200, own.body);
      assert.deepEqual(own.json.results, [bobAccount]);
      for (const query of [`user=${alice.id}`, `user=${carol.id}`, 'item=alice_failed', `item=shared_item&user=${alice.id}`]) {
        const res = await api.request({ method: 'GET', url: `/v2/accounts?${query}`, as: tenantB });
        assert.equal(res.status, 200, res.body);
        assert.deepEqual(res.json.results, [], query);
      }
      assert.deepEqual(idsOf(await api.request({ method: 'GET', url: '/v2/accounts?item=shared_item', as: tenantB })), [bobAccount.id]);
      for (const account of [...aliceAccounts, carolAccount]) {
        for (const id of [account.id, account.id.toUpperCase()]) {
          const res = await api.request({ method: 'GET', url: `/v2/accounts/${id}`, as: tenantB });
          assert.equal(res.status, 404, res.body);
          assert.deepEqual(res.json, NOT_FOUND);
        }
      }
      // And the other way round.
      assert.equal((await api.request({ method: 'GET', url: `/v2/accounts/${bobAccount.id}` })).status, 404);
      assert.deepEqual(
        idsOf(await api.request({ method: 'GET', url: '/v2/accounts?item=shared_item' })),
        [aliceAccounts[0].id],
      );
      const page = await api.request({ method: 'GET', url: '/v2/accounts?limit=1' });
      const stolen = await api.request({ method: 'GET', url: follow(page.json.next), as: tenantB });
      assert.equal(stolen.status, 400, stolen.body);
      assert.deepEqual(stolen.json, { detail: 'Invalid cursor' });
    });

    it("another client's API key cannot delete these accounts: 404, nothing changes", async () => {
      const before = await snapshot();
      const arrays = await arraysOf(api, alice.id);
      for (const account of [...aliceAccounts, carolAccount]) {
        const res = await api.request({ method: 'DELETE', url: `/v2/accounts/${account.id}`, as: tenantB });
        assert.equal(res.status, 404, res.body);
        assert.deepEqual(res.json, NOT_FOUND);
      }
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/accounts/${bobAccount.id}` })).status, 404);
      assert.equal(await snapshot(), before);
      assert.deepEqual(await arraysOf(api, alice.id), arrays);
      assert.deepEqual(await arraysOf(api, bob.id, tenantB), { items: ['shared_item'], employers: ['Bob Employer'] });
    });

    it("one user's token lists only its own accounts, whatever the query says", async () => {
      const carolList = await linkRequest(api, carol.token, { method: 'GET', url: '/v2/link/accounts' });
      assert.deepEqual(carolList.json.results, [carolAccount]);
      const asked = await linkRequest(api, carol.token, { method: 'GET', url: `/v2/link/accounts?user=${alice.id}&item=shared_item` });
      assert.deepEqual(asked.json.results, [carolAccount]);
      const bobList = await linkRequest(api, bob.token, { method: 'GET', url: '/v2/link/accounts' });
      assert.deepEqual(bobList.json.results, [bobAccount]);
      const aliceList = await linkRequest(api, alice.token, { method: 'GET', url: '/v2/link/accounts' });
      assert.deepEqual(idsOf(aliceList), aliceAccounts.map((a) => a.id));
    });

    it("one user's token cannot change another user's account, of its client or another: 404, nothing changes", async () => {
      const before = await snapshot();
      const arrays = await arraysOf(api, alice.id);
      const etag = (await api.request({ method: 'GET', url: `/v2/users/${alice.id}` })).headers.etag;
      for (const intruder of [carol, bob]) {
        for (const account of aliceAccounts) {
          for (const body of [
            { connection: { status: 'connected' }, employers: ['Mallory Inc'] },
            { connection: { status: 'error', error_code: 'account_disabled' } },
          ]) {
            const res = await report(api, intruder, account.id, body);
            assert.equal(res.status, 404, res.body);
            assert.deepEqual(res.json, NOT_FOUND);
          }
        }
      }
      assert.equal((await report(api, alice, carolAccount.id, { connection: { status: 'error', error_code: 'system_error' } })).status, 404);
      assert.equal((await report(api, alice, bobAccount.id, { connection: { status: 'error', error_code: 'system_error' } })).status, 404);
      assert.equal(await snapshot(), before);
      assert.deepEqual(await arraysOf(api, alice.id), arrays);
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${alice.id}` })).headers.etag, etag);
    });

    it("a POST for an item another user has makes the token's user an account of its own", async () => {
      const res = await attempt(api, carol, { item: 'alice_failed' });
      assert.equal(res.status, 201, res.body);
      assert.equal(res.json.user, carol.id);
      assert.notEqual(res.json.id, aliceAccounts[1].id);
      const alices = await api.request({ method: 'GET', url: `/v2/accounts/${aliceAccounts[1].id}` });
      assert.deepEqual(alices.json, aliceAccounts[1], "Alice's failed account did not restart");
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/accounts/${res.json.id}` })).status, 204);
    });

    it("each token reads its own user's pre-fill only", async () => {
      for (const [who, first_name, email] of [
        [alice, 'Alice', 'alice@example.com'],
        [carol, 'Carol', 'carol@example.com'],
        [bob, 'Bob', 'bob@example.com'],
      ] as const) {
        for (const url of ['/v2/link/user', `/v2/link/user?id=${alice.id}`, `/v2/link/user?user=${carol.id}`]) {
          const res = await linkRequest(api, who.token, { method: 'GET', url });
          assert.equal(res.status, 200, res.body);
          assert.deepEqual(res.json, { id: who.id, first_name, last_name: null, email, phone_number: null }, url);
        }
      }
      const path = await linkRequest(api, carol.token, { method: 'GET', url: `/v2/link/user/${alice.id}` });
      assert.notEqual(path.status, 200);
      assert.equal(path.body.includes('Alice'), false);
    });
  });
}
