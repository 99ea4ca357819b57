import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { basicAuth, createTestApi, follow, FULL_USER_BODY, snapshotUsers, STORES, type Response, type TestApi } from './helpers/app.js';
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
  userTokens,
  type AccountJson,
  type LinkUser,
} from './helpers/link.js';

const NOT_PROVIDED = 'Authentication credentials were not provided.';
const INVALID_TOKEN = 'Token is invalid or expired.';
const HOUR_MS = 3600 * 1000;

function assertBearer401(res: Response, detail: string, label: string): void {
  assert.equal(res.status, 401, `${label}: ${res.status} ${res.body}`);
  assert.deepEqual(res.json, { detail }, label);
  assert.match(String(res.headers['www-authenticate']), /^Bearer\b/, `${label}: WWW-Authenticate`);
}

const snapshot = async (api: TestApi) => JSON.stringify([await accountRows(api.db), await snapshotUsers(api.db)]);

for (const store of STORES) {
  describe(`Link authentication (${store})`, () => {
    let api: TestApi;
    let user: LinkUser;
    let accountId: string;

    /** One request per Link route. */
    const endpoints = () =>
      [
        { method: 'GET', url: '/v2/link/user' },
        { method: 'GET', url: '/v2/link/accounts' },
        { method: 'POST', url: '/v2/link/accounts', payload: { item: 'intruder_item' } },
        { method: 'PATCH', url: `/v2/link/accounts/${accountId}`, payload: { connection: { status: 'connected' } } },
      ] as const;

    /** Sends `authorization` (or none) to every Link route: 401 `detail` with a Bearer challenge, nothing changed. */
    async function expectRejectedEverywhere(authorization: string | undefined, detail: string) {
      const before = await snapshot(api);
      for (const endpoint of endpoints()) {
        const label = `${endpoint.method} ${endpoint.url} with ${JSON.stringify(authorization)?.slice(0, 60)}`;
        const res = await api.request({ ...endpoint, as: null, headers: authorization === undefined ? {} : { authorization } });
        assertBearer401(res, detail, label);
      }
      assert.equal(await snapshot(api), before);
    }

    before(async () => {
      api = await createTestApi(store);
      user = await createLinkUser(api, { first_name: 'Alice' });
      accountId = (await attempt(api, user, { item: 'auth_item' })).json.id;
    });
    after(() => api.close());

    it("accepts the user's token on every Link route (the control for the cases below), in either case of the scheme", async () => {
      for (const scheme of ['Bearer', 'bearer']) {
        const statuses = [];
        for (const endpoint of endpoints()) {
          statuses.push((await api.request({ ...endpoint, as: null, headers: { authorization: `${scheme} ${user.token}` } })).status);
        }
        assert.deepEqual(statuses, scheme === 'Bearer' ? [200, 200, 201, 200] : [200, 200, 200, 200], scheme);
      }
      // A token minted here the way the app mints them is accepted: the forged tokens below differ only where they say.
      const minted = await userTokens().mint(api.tenant.client_id, user.id);
      assert.equal((await linkRequest(api, minted, { method: 'GET', url: '/v2/link/user' })).status, 200);
    });

    it('no Authorization header, an API key or another scheme: 401 "Authentication credentials were not provided."', async () => {
      await expectRejectedEverywhere(undefined, NOT_PROVIDED);
      await expectRejectedEverywhere('', NOT_PROVIDED);
      await expectRejectedEverywhere(basicAuth(api.tenant), NOT_PROVIDED);
      await expectRejectedEverywhere(`Token ${user.token}`, NOT_PROVIDED);
      await expectRejectedEverywhere(`JWT ${user.token}`, NOT_PROVIDED);
    });

    it('bad header shapes: DRF\'s "Invalid token header. ..." messages', async () => {
      await expectRejectedEverywhere('Bearer', 'Invalid token header. No credentials provided.');
      await expectRejectedEverywhere('Bearer   ', 'Invalid token header. No credentials provided.');
      await expectRejectedEverywhere(`Bearer ${user.token} extra`, 'Invalid token header. Token string should not contain spaces.');
      await expectRejectedEverywhere(`Bearer ${user.token.replaceAll('.', ' ')}`, 'Invalid token header. Token string should not contain spaces.');
    });

    it('an expired token: 401 "Token is invalid or expired."', async () => {
      const expired = await userTokens().mint(api.tenant.client_id, user.id, Date.now() - 2 * HOUR_MS);
      await expectRejectedEverywhere(`Bearer ${expired}`, INVALID_TOKEN);
      // Just expired, too.
      const justExpired = await userTokens().mint(api.tenant.client_id, user.id, Date.now() - HOUR_MS - 2000);
      await expectRejectedEverywhere(`Bearer ${justExpired}`, INVALID_TOKEN);
    });

    it('a tampered token, one signed with another secret, of another issuer, or garbage: 401 "Token is invalid or expired."', async () => {
      const [head, body, signature = ''] = user.token.split('.');
      const claims = JSON.parse(Buffer.from(body ?? '', 'base64url').toString('utf8'));
      const other = await createLinkUser(api, { first_name: 'Bob' });
      const withPayload = (payload: object) => `${head}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;
      const cases = {
        'payload changed under the signature': withPayload({ ...claims, user_id: other.id, sub: other.id }),
        'signature altered': `${head}.${body}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`,
        'signature removed': `${head}.${body}.`,
        'alg none': `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${body}.`,
        'another secret': await userTokens({ secret: 'another-secret-another-secret-another-secret' }).mint(api.tenant.client_id, user.id),
        'another issuer': await userTokens({ issuer: 'someone-else' }).mint(api.tenant.client_id, user.id),
        'not a JWT': 'not-a-token',
        'an API key secret': api.tenant.api_key_secret,
      };
      for (const [name, token] of Object.entries(cases)) {
        const before = await snapshot(api);
        for (const endpoint of endpoints()) {
          const res = await api.request({ ...endpoint, as: null, headers: { authorization: `Bearer ${token}` } });
          assertBearer401(res, INVALID_TOKEN, `${name}: ${endpoint.method} ${endpoint.url}`);
        }
        assert.equal(await snapshot(api), before, name);
      }
    });

    it("a validly signed token naming another client's id for this user: 401 (a token reaches its own client's user only)", async () => {
      const tenantB = await api.newTenant('tenant-b');
      const forged = await userTokens().mint(tenantB.client_id, user.id);
      await expectRejectedEverywhere(`Bearer ${forged}`, INVALID_TOKEN);
    });

    it("every token of a deleted user: 401 \"Token is invalid or expired.\"", async () => {
      const doomed = await createLinkUser(api);
      const minted = await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: doomed.id } });
      const tokens = [doomed.token, minted.json.user_token as string];
      for (const token of tokens) assert.equal((await linkRequest(api, token, { method: 'GET', url: '/v2/link/user' })).status, 200);
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/users/${doomed.id}` })).status, 204);
      for (const token of tokens) await expectRejectedEverywhere(`Bearer ${token}`, INVALID_TOKEN);
    });

    it('a user token is not accepted on the API-key routes: 401 with the Basic challenge', async () => {
      const routes = [
        { method: 'GET', url: '/v2/accounts' },
        { method: 'GET', url: `/v2/accounts/${accountId}` },
        { method: 'DELETE', url: `/v2/accounts/${accountId}` },
        { method: 'GET', url: '/v2/users' },
        { method: 'GET', url: `/v2/users/${user.id}` },
        { method: 'PATCH', url: `/v2/users/${user.id}`, payload: { first_name: 'Mallory' } },
        { method: 'DELETE', url: `/v2/users/${user.id}` },
        { method: 'POST', url: '/v2/user-tokens', payload: { user: user.id } },
      ] as const;
      const before = await snapshot(api);
      for (const route of routes) {
        const res = await linkRequest(api, user.token, route);
        assert.equal(res.status, 401, `${route.method} ${route.url}: ${res.body}`);
        assert.deepEqual(res.json, { detail: NOT_PROVIDED });
        assert.match(String(res.headers['www-authenticate']), /^Basic\b/);
      }
      assert.equal(await snapshot(api), before);
      assert.equal((await api.request({ method: 'GET', url: `/v2/accounts/${accountId}` })).status, 200, 'the account is still there');
    });

    it('authentication comes before body parsing and validation', async () => {
      for (const headers of [{}, { authorization: 'Bearer not-a-token' }]) {
        const res = await api.request({
          method: 'POST',
          url: '/v2/link/accounts',
          as: null,
          payload: '{"item": ',
          headers: { 'content-type': 'application/json', ...headers },
        });
        assert.equal(res.status, 401, res.body);
        const invalid = await api.request({ method: 'PATCH', url: `/v2/link/accounts/${accountId}`, as: null, payload: {}, headers });
        assert.equal(invalid.status, 401, invalid.body);
      }
    });
  });

  describe(`GET /v2/link/user (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('answers the pre-fill of the token\'s user: id, names, email and phone number, nothing else', async () => {
      const user = await createLinkUser(api, FULL_USER_BODY);
      const res = await linkRequest(api, user.token, { method: 'GET', url: '/v2/link/user' });
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(Object.keys(res.json), ['id', 'first_name', 'last_name', 'email', 'phone_number']);
      assert.deepEqual(res.json, {
        id: user.id,
        first_name: FULL_USER_BODY.first_name,
        last_name: FULL_USER_BODY.last_name,
        email: FULL_USER_BODY.email,
        phone_number: FULL_USER_BODY.phone_number,
      });
      for (const secret of ['123-45-6789', '123456789', 'New York', '1 Main St', '10001', '1990', 'Summer Initiative', 'July_Connection', 'Lender', 'ssn', 'birth']) {
        assert.equal(res.body.includes(secret), false, `${secret} leaked: ${res.body}`);
      }
    });

    it('shows unset fields as null and follows a PATCH of the user', async () => {
      const user = await createLinkUser(api);
      const empty = await linkRequest(api, user.token, { method: 'GET', url: '/v2/link/user' });
      assert.deepEqual(empty.json, { id: user.id, first_name: null, last_name: null, email: null, phone_number: null });
      const patched = await api.request({ method: 'PATCH', url: `/v2/users/${user.id}`, payload: { first_name: 'Grace', email: 'grace@example.com' } });
      assert.equal(patched.status, 200, patched.body);
      const res = await linkRequest(api, user.token, { method: 'GET', url: '/v2/link/user' });
      assert.deepEqual(res.json, { id: user.id, first_name: 'Grace', last_name: null, email: 'grace@example.com', phone_number: null });
    });
  });

  describe(`Link accounts: attempts, lists and reports (${store})`, () => {
    let api: TestApi;
    let user: LinkUser;
    before(async () => {
      api = await createTestApi(store);
      user = await createLinkUser(api);
    });
    after(() => api.close());

    const getAccount = async (id: string): Promise<AccountJson> => {
      const res = await api.request({ method: 'GET', url: `/v2/accounts/${id}` });
      assert.equal(res.status, 200, res.body);
      return res.json;
    };
    const connected = { connection: { status: 'connected' } };
    const failed = { connection: { status: 'error', error_code: 'invalid_mfa' } };

    it('one account per (user, item): a second POST for a connecting or connected item answers that account unchanged with 200', async () => {
      const first = await attempt(api, user, { item: 'once', employers: ['First'] });
      assert.equal(first.status, 201);
      const again = await attempt(api, user, { item: 'once', employers: ['Second'], source: 'other' });
      assert.equal(again.status, 200);
      assert.deepEqual(again.json, first.json);
      const done = await report(api, user, first.json.id, connected);
      assert.equal(done.status, 200);
      const whileConnected = await attempt(api, user, { item: 'once' });
      assert.equal(whileConnected.status, 200);
      assert.deepEqual(whileConnected.json, done.json);
      assert.deepEqual(await getAccount(first.json.id), done.json);
      assert.equal((await accountRows(api.db, user.id)).filter((r) => r.item === 'once').length, 1);
    });

    it('a POST for a failed item starts a new attempt on the same account: connecting, error fields cleared', async () => {
      const start = (await attempt(api, user, { item: 'retried', employers: ['Old'] })).json;
      assert.equal((await report(api, user, start.id, connected)).status, 200);
      const error = (await report(api, user, start.id, failed)).json;
      assert.equal(error.connection.status, 'error');
      const retry = await attempt(api, user, { item: 'retried', employers: ['New'] });
      assert.equal(retry.status, 200);
      assert.equal(retry.json.id, start.id);
      assert.deepEqual(retry.json.connection.status, 'connecting');
      assert.equal(retry.json.connection.error_code, null);
      assert.equal(retry.json.connection.error_message, null);
      assert.ok(retry.json.connection.updated_at > error.connection.updated_at);
      assert.ok(retry.json.updated_at > error.updated_at);
      assert.deepEqual(retry.json.employers, ['New']);
      assert.equal(retry.json.scanned_at, error.scanned_at, 'the last successful scan is kept');
      assert.equal(retry.json.created_at, start.created_at);
      assert.deepEqual(await getAccount(start.id), retry.json);
      // The retry can now be reported.
      const ok = await report(api, user, start.id, connected);
      assert.equal(ok.status, 200, ok.body);
      assert.ok(ok.json.scanned_at > error.scanned_at);
    });

    it('transitions: connecting → connected | error, connected → connected (rescan) | error; error → anything is 409', async () => {
      const cases: Array<{ from: Array<object>; to: object; status: number }> = [
        { from: [], to: connected, status: 200 },
        { from: [], to: failed, status: 200 },
        { from: [connected], to: connected, status: 200 },
        { from: [connected], to: failed, status: 200 },
        { from: [failed], to: connected, status: 409 },
        { from: [failed], to: failed, status: 409 },
        { from: [connected, failed], to: connected, status: 409 },
      ];
      for (const [i, { from, to, status }] of cases.entries()) {
        const label = `${JSON.stringify(from)} then ${JSON.stringify(to)}`;
        const account = (await attempt(api, user, { item: `transition-${i}` })).json;
        for (const step of from) assert.equal((await report(api, user, account.id, step)).status, 200, label);
        const before = await getAccount(account.id);
        const arrays = await arraysOf(api, user.id);
        const res = await report(api, user, account.id, to);
        assert.equal(res.status, status, `${label}: ${res.body}`);
        if (status === 409) {
          assert.deepEqual(Object.keys(res.json), ['detail']);
          assert.match(res.json.detail, /failed.*POST \/v2\/link\/accounts/);
          assert.deepEqual(await getAccount(account.id), before, `${label}: nothing changed`);
          assert.deepEqual(await arraysOf(api, user.id), arrays, `${label}: the arrays did not change`);
        } else {
          const target = (to as { connection: { status: string } }).connection.status;
          assert.equal(res.json.connection.status, target, label);
          assert.deepEqual(await getAccount(account.id), res.json, label);
          assert.equal((await arraysOf(api, user.id)).items.includes(`transition-${i}`), target === 'connected', label);
          if (target === 'connected') assert.ok(res.json.scanned_at > (before.scanned_at ?? ''), `${label}: scanned_at moves on`);
          else assert.equal(res.json.scanned_at, before.scanned_at, `${label}: scanned_at is kept`);
        }
      }
    });

    it("GET /v2/link/accounts lists the token's user's accounts, oldest first, and pages them", async () => {
      const owner = await createLinkUser(api);
      const other = await createLinkUser(api);
      await attempt(api, other, { item: 'not-mine' });
      const mine: AccountJson[] = [];
      for (let i = 0; i < 5; i++) mine.push((await attempt(api, owner, { item: `mine-${i}` })).json);
      mine[2] = await connect(api, owner, 'mine-2');
      mine[3] = await fail(api, owner, 'mine-3');
      const all = await linkRequest(api, owner.token, { method: 'GET', url: '/v2/link/accounts' });
      assert.equal(all.status, 200, all.body);
      assert.deepEqual(all.json, { next: null, previous: null, results: mine });

      const first = await linkRequest(api, owner.token, { method: 'GET', url: '/v2/link/accounts?limit=2' });
      assert.deepEqual(first.json.results, mine.slice(0, 2));
      assert.match(first.json.next, /^http:\/\/localhost(:80)?\/v2\/link\/accounts\?cursor=[\w.-]+$/);
      const second = await linkRequest(api, owner.token, { method: 'GET', url: follow(first.json.next) });
      assert.deepEqual(second.json.results, mine.slice(2, 4));
      const third = await linkRequest(api, owner.token, { method: 'GET', url: follow(second.json.next) });
      assert.deepEqual(third.json.results, mine.slice(4));
      assert.equal(third.json.next, null);
      const back = await linkRequest(api, owner.token, { method: 'GET', url: follow(third.json.previous) });
      assert.deepEqual(back.json.results, mine.slice(2, 4));

      // Filters of the API-key list do not widen it.
      const widened = await linkRequest(api, owner.token, { method: 'GET', url: `/v2/link/accounts?user=${other.id}&item=not-mine` });
      assert.equal(widened.status, 200, widened.body);
      assert.deepEqual(idsOf(widened), mine.map((a) => a.id));
    });

    it("a Link cursor is bound to the token's user; an API-key list cursor is not a Link cursor", async () => {
      const owner = await createLinkUser(api);
      const other = await createLinkUser(api);
      for (let i = 0; i < 3; i++) {
        await attempt(api, owner, { item: `bound-${i}` });
        await attempt(api, other, { item: `bound-${i}` });
      }
      const page = await linkRequest(api, owner.token, { method: 'GET', url: '/v2/link/accounts?limit=1' });
      const next = follow(page.json.next);
      assert.equal((await linkRequest(api, owner.token, { method: 'GET', url: next })).status, 200);
      const stolen = await linkRequest(api, other.token, { method: 'GET', url: next });
      assert.equal(stolen.status, 400, stolen.body);
      assert.deepEqual(stolen.json, { detail: 'Invalid cursor' });

      const apiPage = await api.request({ method: 'GET', url: `/v2/accounts?user=${owner.id}&limit=1` });
      const apiCursor = new URL(apiPage.json.next).searchParams.get('cursor');
      const crossed = await linkRequest(api, owner.token, { method: 'GET', url: `/v2/link/accounts?cursor=${apiCursor}` });
      assert.equal(crossed.status, 400, crossed.body);
      assert.deepEqual(crossed.json, { detail: 'Invalid cursor' });
      const limit = await linkRequest(api, owner.token, { method: 'GET', url: '/v2/link/accounts?limit=0' });
      assert.equal(limit.status, 400);
      assert.deepEqual(limit.json, { limit: ['Ensure this value is greater than or equal to 1.'] });
    });
  });

  describe(`Link accounts: concurrency (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('concurrent reports from connecting, one connected and one error: one coherent state, the arrays agree', async () => {
      const user = await createLinkUser(api);
      for (let round = 0; round < 10; round++) {
        const item = `race-${round}`;
        const account = (await attempt(api, user, { item })).json;
        const bodies = [
          { connection: { status: 'connected' }, employers: [`Connected ${round}`] },
          { connection: { status: 'error', error_code: 'system_error' } },
        ];
        if (round % 2 === 1) bodies.reverse();
        const results = await Promise.all(bodies.map((body) => report(api, user, account.id, body)));
        const byStatus = (s: string) => results[bodies.findIndex((b) => b.connection.status === s)]!;
        const ok = byStatus('connected');
        const error = byStatus('error');
        assert.ok([200, 409].includes(ok.status), `connected: ${ok.status} ${ok.body}`);
        // connected → error is allowed and error → connected is not: error always ends up applied, last.
        assert.equal(error.status, 200, `error: ${error.body}`);
        const final = (await api.request({ method: 'GET', url: `/v2/accounts/${account.id}` })).json;
        assert.deepEqual(final, error.json, `round ${round}: the account is the last applied report`);
        assert.equal(final.connection.status, 'error');
        if (ok.status === 200) assert.ok(ok.json.connection.updated_at < error.json.connection.updated_at);
        const arrays = await arraysOf(api, user.id);
        assert.equal(arrays.items.includes(item), false, `round ${round}: ${JSON.stringify(arrays)}`);
        assert.equal(arrays.employers.includes(`Connected ${round}`), false, `round ${round}: ${JSON.stringify(arrays)}`);
      }
    });

    it("concurrent reports on a user's different accounts: the arrays hold every connected one, no lost update", async () => {
      const user = await createLinkUser(api);
      const accounts: AccountJson[] = [];
      for (let i = 0; i < 12; i++) accounts.push((await attempt(api, user, { item: `parallel-${i}` })).json);
      const results = await Promise.all(
        accounts.map((account, i) =>
          report(
            api,
            user,
            account.id,
            i % 3 === 2
              ? { connection: { status: 'error', error_code: 'mfa_exhausted' } }
              : { connection: { status: 'connected' }, employers: [`Employer ${i}`, 'Everyone'] },
          ),
        ),
      );
      for (const res of results) assert.equal(res.status, 200, res.body);
      const arrays = await arraysOf(api, user.id);
      const expectedItems = accounts.filter((_, i) => i % 3 !== 2).map((a) => a.item);
      assert.deepEqual([...arrays.items].sort(), [...expectedItems].sort());
      assert.deepEqual(
        [...arrays.employers].sort(),
        [...accounts.flatMap((_, i) => (i % 3 === 2 ? [] : [`Employer ${i}`])), 'Everyone'].sort(),
      );
      // In order of connection: the same order as the reports' connection times.
      const connectedInOrder = results
        .map((r) => r.json)
        .filter((a) => a.connection.status === 'connected')
        .sort((a, b) => (a.connection.updated_at < b.connection.updated_at ? -1 : 1))
        .map((a) => a.item);
      assert.deepEqual(arrays.items, connectedInOrder);
    });

    it('reports, account deletes and user PATCHes at once: the arrays are exact for the accounts that remain', async () => {
      const user = await createLinkUser(api);
      const accounts: AccountJson[] = [];
      for (let i = 0; i < 12; i++) accounts.push(i < 4 ? await connect(api, user, `mixed-${i}`, [`Early ${i}`]) : (await attempt(api, user, { item: `mixed-${i}` })).json);
      const work = [
        // Delete two connected accounts, connect the new ones, fail one, and patch the user meanwhile.
        api.request({ method: 'DELETE', url: `/v2/accounts/${accounts[0].id}` }),
        api.request({ method: 'DELETE', url: `/v2/accounts/${accounts[1].id}` }),
        ...accounts.slice(4, 11).map((a, i) => report(api, user, a.id, { connection: { status: 'connected' }, employers: [`Late ${i}`] })),
        report(api, user, accounts[11].id, { connection: { status: 'error', error_code: 'account_inaccessible' } }),
        ...Array.from({ length: 6 }, (_, i) => api.request({ method: 'PATCH', url: `/v2/users/${user.id}`, payload: { first_name: `Name ${i}` } })),
      ];
      for (const res of await Promise.all(work)) assert.ok(res.status === 200 || res.status === 204, `${res.status} ${res.body}`);
      const remaining = (await api.request({ method: 'GET', url: `/v2/accounts?user=${user.id}&limit=200` })).json.results as AccountJson[];
      const connectedNow = remaining.filter((a) => a.connection.status === 'connected');
      assert.equal(connectedNow.length, 2 + 7);
      const arrays = await arraysOf(api, user.id);
      assert.deepEqual([...arrays.items].sort(), connectedNow.map((a) => a.item).sort());
      assert.deepEqual([...arrays.employers].sort(), [...new Set(connectedNow.flatMap((a) => a.employers as string[]))].sort());
    });

    it('concurrent POSTs of one item make one account: one 201, the others 200 with the same account', async () => {
      const user = await createLinkUser(api);
      for (const item of ['same-1', 'same-2', 'same-3']) {
        const results = await Promise.all(
          Array.from({ length: 8 }, () => linkRequest(api, user.token, { method: 'POST', url: '/v2/link/accounts', payload: { item } })),
        );
        const statuses = results.map((r) => r.status).sort();
        assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 201], `${item}: ${results.map((r) => r.body).join('\n')}`);
        assert.equal(new Set(results.map((r) => r.json.id)).size, 1, item);
        assert.equal((await accountRows(api.db, user.id)).filter((r) => r.item === item).length, 1, item);
      }
    });
  });

  describe(`Link accounts: Idempotency-Key (${store})`, () => {
    let api: TestApi;
    let user: LinkUser;
    before(async () => {
      api = await createTestApi(store);
      user = await createLinkUser(api);
    });
    after(() => api.close());

    const post = (who: LinkUser, key: string | undefined, payload: object) =>
      linkRequest(api, who.token, {
        method: 'POST',
        url: '/v2/link/accounts',
        payload,
        headers: key === undefined ? {} : { 'idempotency-key': key },
      });

    it('a retried POST returns the first response (201) and makes nothing more, even after the account changed', async () => {
      const first = await post(user, 'attempt-1', { item: 'idem_item', employers: ['E'] });
      assert.equal(first.status, 201, first.body);
      assert.equal(first.headers['idempotent-replayed'], undefined);
      const again = await post(user, 'attempt-1', { item: 'idem_item', employers: ['E'] });
      assert.equal(again.status, 201, again.body);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.deepEqual(again.json, first.json);
      assert.equal((await accountRows(api.db, user.id)).length, 1);
      assert.equal((await report(api, user, first.json.id, { connection: { status: 'connected' } })).status, 200);
      const later = await post(user, 'attempt-1', { item: 'idem_item', employers: ['E'] });
      assert.equal(later.status, 201);
      assert.deepEqual(later.json, first.json);
      // Without the key, the same body is answered with the account as it is now.
      const plain = await post(user, undefined, { item: 'idem_item', employers: ['E'] });
      assert.equal(plain.status, 200);
      assert.equal(plain.json.connection.status, 'connected');
    });

    it('the same key with another body, or from another user of the client, is 422 and acts on nothing', async () => {
      await post(user, 'attempt-2', { item: 'idem_a' });
      const before = JSON.stringify(await accountRows(api.db));
      const changed = await post(user, 'attempt-2', { item: 'idem_b' });
      assert.equal(changed.status, 422, changed.body);
      assert.match(changed.json.detail, /Idempotency-Key was already used with a different request/);
      const sibling = await createLinkUser(api);
      const theirs = await post(sibling, 'attempt-2', { item: 'idem_a' });
      assert.equal(theirs.status, 422, theirs.body);
      assert.equal(theirs.body.includes(user.id), false);
      assert.equal(JSON.stringify(await accountRows(api.db)), before);
    });

    it("another client's key space is its own; an invalid key is 400", async () => {
      await post(user, 'attempt-3', { item: 'idem_c' });
      const tenantB = await api.newTenant('tenant-b');
      const stranger = await createLinkUser(api, {}, tenantB);
      const res = await post(stranger, 'attempt-3', { item: 'idem_c' });
      assert.equal(res.status, 201, res.body);
      assert.equal(res.json.user, stranger.id);
      const bad = await post(user, 'tab\there', { item: 'idem_d' });
      assert.equal(bad.status, 400, bad.body);
      assert.match(bad.json.detail, /Idempotency-Key must be/);
    });

    it('concurrent POSTs with one key make one account and answer it alike', async () => {
      const results = await Promise.all(Array.from({ length: 8 }, () => post(user, 'attempt-4', { item: 'idem_concurrent' })));
      for (const res of results) assert.equal(res.status, 201, res.body);
      assert.equal(new Set(results.map((r) => r.json.id)).size, 1);
      assert.equal((await accountRows(api.db, user.id)).filter((r) => r.item === 'idem_concurrent').length, 1);
    });
  });

  describe(`Link CORS (${store})`, () => {
    const ORIGIN = 'https://app.example.com';
    let api: TestApi;
    let plain: TestApi;
    let user: LinkUser;
    let accountId: string;
    before(async () => {
      api = await createTestApi(store, { LINK_ALLOWED_ORIGINS: `${ORIGIN},https://second.example.com` });
      plain = await createTestApi(store);
      user = await createLinkUser(api);
      accountId = (await attempt(api, user, { item: 'cors_item' })).json.id;
    });
    after(async () => {
      await api.close();
      await plain.close();
    });

    const preflight = (on: TestApi, url: string, origin: string, method = 'POST') =>
      on.request({
        method: 'OPTIONS',
        url,
        as: null,
        headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
      });
    const corsHeaders = (res: Response) => Object.keys(res.headers).filter((h) => h.startsWith('access-control-'));
    const linkRoutes = () => [
      ['/v2/link/user', 'GET'],
      ['/v2/link/accounts', 'GET'],
      ['/v2/link/accounts', 'POST'],
      [`/v2/link/accounts/${accountId}`, 'PATCH'],
    ];

    it('a preflight from an allowed origin is 204 with the CORS headers, before (and without) authentication', async () => {
      for (const origin of [ORIGIN, 'https://second.example.com']) {
        for (const [url, method] of linkRoutes()) {
          const res = await preflight(api, url!, origin, method);
          const label = `${method} ${url} from ${origin}`;
          assert.equal(res.status, 204, `${label}: ${res.body}`);
          assert.equal(res.body, '');
          assert.equal(res.headers['access-control-allow-origin'], origin, label);
          const methods = String(res.headers['access-control-allow-methods']).split(/,\s*/);
          assert.ok(methods.includes(method!), `${label}: ${methods.join(', ')}`);
          const allowed = String(res.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/);
          for (const header of ['authorization', 'content-type', 'idempotency-key']) assert.ok(allowed.includes(header), `${label}: ${header}`);
          assert.equal(res.headers['access-control-max-age'], '600');
          assert.match(String(res.headers.vary), /origin/i);
          assert.equal(res.headers['www-authenticate'], undefined, `${label}: not an authentication failure`);
        }
      }
    });

    it('an actual request from an allowed origin carries Access-Control-Allow-Origin and the exposed headers', async () => {
      const res = await linkRequest(api, user.token, { method: 'GET', url: '/v2/link/user', headers: { origin: ORIGIN } });
      assert.equal(res.status, 200, res.body);
      assert.equal(res.headers['access-control-allow-origin'], ORIGIN);
      const exposed = String(res.headers['access-control-expose-headers']).toLowerCase();
      assert.match(exposed, /idempotent-replayed/);
    });

    it('a preflight from another origin is not allowed: no Access-Control-Allow-Origin', async () => {
      for (const origin of ['https://evil.example.com', 'http://app.example.com', 'https://app.example.com.evil.com', 'null']) {
        for (const [url, method] of linkRoutes()) {
          const res = await preflight(api, url!, origin, method);
          assert.equal(res.headers['access-control-allow-origin'], undefined, `${method} ${url} from ${origin}`);
        }
      }
      const res = await linkRequest(api, user.token, { method: 'GET', url: '/v2/link/user', headers: { origin: 'https://evil.example.com' } });
      assert.equal(res.headers['access-control-allow-origin'], undefined);
    });

    it('the API-key routes never answer a preflight, even from an allowed origin', async () => {
      for (const url of ['/v2/users', `/v2/users/${user.id}`, '/v2/accounts', `/v2/accounts/${accountId}`, '/v2/user-tokens']) {
        const res = await preflight(api, url, ORIGIN);
        assert.deepEqual(corsHeaders(res), [], `${url}: ${JSON.stringify(res.headers)}`);
        assert.ok(res.status >= 400, `${url}: ${res.status}`);
        const get = await api.request({ method: 'GET', url, headers: { origin: ORIGIN } });
        assert.deepEqual(corsHeaders(get), [], `GET ${url}`);
      }
    });

    it('without LINK_ALLOWED_ORIGINS no route answers a preflight', async () => {
      const own = await createLinkUser(plain);
      const account = (await attempt(plain, own, { item: 'plain_item' })).json.id;
      for (const url of ['/v2/link/user', '/v2/link/accounts', `/v2/link/accounts/${account}`, '/v2/users']) {
        const res = await preflight(plain, url, ORIGIN);
        assert.deepEqual(corsHeaders(res), [], `${url}: ${JSON.stringify(res.headers)}`);
        assert.notEqual(res.status, 204, url);
      }
      const res = await linkRequest(plain, own.token, { method: 'GET', url: '/v2/link/user', headers: { origin: ORIGIN } });
      assert.equal(res.status, 200);
      assert.deepEqual(corsHeaders(res), []);
    });
  });
}
