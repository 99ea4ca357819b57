import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestApi, STORES, type TestApi } from './helpers/app.js';
import { accountRows, attempt, idsOf, linkRequest, report } from './helpers/link.js';

const PREFILL = { first_name: 'Sarah', last_name: 'Longfield', email: 'sarah@email.com', phone_number: '+12125555555' };

for (const store of STORES) {
  describe(`a whole Link flow, as a client runs it (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('create, pre-fill, connect two items (one after a failure), read the arrays, delete an account, delete the user', async () => {
      // The client's back end creates the user with pre-fill fields (and more) and hands the token to its front end.
      const created = await api.request({
        method: 'POST',
        url: '/v2/users',
        payload: { ...PREFILL, ssn: '123-45-6789', external_id: 'flow-user', external_metadata: { stage: 1 } },
      });
      assert.equal(created.status, 200, created.body);
      const user = { id: created.json.id as string, token: created.json.user_token as string };

      // Link reads the pre-fill with the token.
      const prefill = await linkRequest(api, user.token, { method: 'GET', url: '/v2/link/user' });
      assert.equal(prefill.status, 200, prefill.body);
      assert.deepEqual(prefill.json, { id: user.id, ...PREFILL });

      // First item: the first attempt fails, the retry succeeds.
      const first = await attempt(api, user, { item: 'item_payroll', employers: ['Acme Corp'] });
      assert.equal(first.status, 201);
      const failed = await report(api, user, first.json.id, { connection: { status: 'error', error_code: 'invalid_credentials' } });
      assert.equal(failed.status, 200, failed.body);
      assert.equal(failed.json.connection.status, 'error');
      let me = (await api.request({ method: 'GET', url: `/v2/users/${user.id}` })).json;
      assert.deepEqual([me.items_connected, me.employers_connected], [[], []]);
      const retry = await attempt(api, user, { item: 'item_payroll' });
      assert.equal(retry.status, 200);
      assert.equal(retry.json.id, first.json.id);
      assert.equal(retry.json.connection.status, 'connecting');
      const connectedFirst = await report(api, user, first.json.id, { connection: { status: 'connected' }, employers: ['Acme Corp', 'Acme Holdings'] });
      assert.equal(connectedFirst.status, 200, connectedFirst.body);

      // Second item: connects at once.
      const second = await attempt(api, user, { item: 'item_gig', source: 'gig_platform' });
      assert.equal(second.status, 201);
      const connectedSecond = await report(api, user, second.json.id, { connection: { status: 'connected' }, employers: ['Gig Co', 'Acme Corp'] });
      assert.equal(connectedSecond.status, 200, connectedSecond.body);

      // Both arrays, on GET and in the list.
      const items = ['item_payroll', 'item_gig'];
      const employers = ['Acme Corp', 'Acme Holdings', 'Gig Co'];
      me = (await api.request({ method: 'GET', url: `/v2/users/${user.id}` })).json;
      assert.deepEqual(me.items_connected, items);
      assert.deepEqual(me.employers_connected, employers);
      const listed = await api.request({ method: 'GET', url: '/v2/users?external_id=flow-user' });
      assert.deepEqual(listed.json.results.map((u: { id: string }) => u.id), [user.id]);
      assert.deepEqual(listed.json.results[0].items_connected, items);
      assert.deepEqual(listed.json.results[0].employers_connected, employers);
      const accounts = await api.request({ method: 'GET', url: `/v2/accounts?user=${user.id}` });
      assert.deepEqual(accounts.json.results, [connectedFirst.json, connectedSecond.json]);
      const linkAccounts = await linkRequest(api, user.token, { method: 'GET', url: '/v2/link/accounts' });
      assert.deepEqual(linkAccounts.json.results, [connectedFirst.json, connectedSecond.json]);

      // The client deletes one account.
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/accounts/${first.json.id}` })).status, 204);
      me = (await api.request({ method: 'GET', url: `/v2/users/${user.id}` })).json;
      assert.deepEqual(me.items_connected, ['item_gig']);
      assert.deepEqual(me.employers_connected, ['Gig Co', 'Acme Corp']);
      assert.deepEqual(idsOf(await linkRequest(api, user.token, { method: 'GET', url: '/v2/link/accounts' })), [second.json.id]);

      // Then the user: nothing of it is left.
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/users/${user.id}` })).status, 204);
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${user.id}` })).status, 404);
      assert.deepEqual((await api.request({ method: 'GET', url: `/v2/accounts?user=${user.id}` })).json.results, []);
      assert.deepEqual((await api.request({ method: 'GET', url: '/v2/accounts' })).json.results, []);
      assert.equal((await api.request({ method: 'GET', url: `/v2/accounts/${second.json.id}` })).status, 404);
      assert.deepEqual(await accountRows(api.db, user.id), []);
      for (const url of ['/v2/link/user', '/v2/link/accounts']) {
        const res = await linkRequest(api, user.token, { method: 'GET', url });
        assert.equal(res.status, 401, `${url}: ${res.body}`);
        assert.deepEqual(res.json, { detail: 'Token is invalid or expired.' });
      }
      const late = await linkRequest(api, user.token, { method: 'POST', url: '/v2/link/accounts', payload: { item: 'item_late' } });
      assert.equal(late.status, 401);
      assert.deepEqual(await accountRows(api.db), []);
    });
  });
}
