import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestApi, follow, INVALID_LIMITS, STORES, type TestApi } from './helpers/app.js';
import {
  ACCOUNT_KEYS,
  accountRows,
  arraysOf,
  attempt,
  connect,
  CONNECTION_KEYS,
  createLinkUser,
  fail,
  getUser,
  idsOf,
  linkRequest,
  MISSING_ID,
  report,
  TIMESTAMP,
  UUIDV7,
  type AccountJson,
  type LinkUser,
} from './helpers/link.js';

const NOT_FOUND = { detail: 'Not found.' };

for (const store of STORES) {
  describe(`accounts: the object (${store})`, () => {
    let api: TestApi;
    let user: LinkUser;
    before(async () => {
      api = await createTestApi(store);
      user = await createLinkUser(api, { first_name: 'Ada' });
    });
    after(() => api.close());

    const getAccount = (id: string) => api.request({ method: 'GET', url: `/v2/accounts/${id}` });

    it('a new attempt is 201: an account in `connecting` with the documented keys in order, timestamps as users have them', async () => {
      const res = await attempt(api, user, { item: 'item_000000001', employers: ['Acme Corp', 'Initech'] });
      assert.equal(res.status, 201);
      const account = res.json;
      assert.deepEqual(Object.keys(account), ACCOUNT_KEYS);
      assert.deepEqual(Object.keys(account.connection), CONNECTION_KEYS);
      assert.match(account.id, UUIDV7);
      assert.equal(account.user, user.id);
      assert.deepEqual(account.employers, ['Acme Corp', 'Initech']);
      assert.equal(account.item, 'item_000000001');
      assert.equal(account.source, 'item_000000001', 'source defaults to the item');
      assert.match(account.created_at, TIMESTAMP);
      assert.equal(account.updated_at, account.created_at);
      assert.equal(account.scanned_at, null);
      assert.deepEqual(account.connection, { status: 'connecting', error_code: null, error_message: null, updated_at: account.created_at });

      const got = await getAccount(account.id);
      assert.equal(got.status, 200, got.body);
      assert.deepEqual(Object.keys(got.json), ACCOUNT_KEYS);
      assert.deepEqual(Object.keys(got.json.connection), CONNECTION_KEYS);
      assert.deepEqual(got.json, account, 'the stored account reads back exactly as answered');
      assert.deepEqual((await getAccount(account.id.toUpperCase())).json, account);
    });

    it('keeps a given source; employers default to []', async () => {
      const res = await attempt(api, user, { item: 'item_000000002', source: 'manual_upload' });
      assert.equal(res.status, 201);
      assert.equal(res.json.source, 'manual_upload');
      assert.equal(res.json.item, 'item_000000002');
      assert.deepEqual(res.json.employers, []);
      assert.deepEqual((await getAccount(res.json.id)).json, res.json);
    });

    it('accounts are ordered by id as by creation: ids are time-ordered UUIDv7s', async () => {
      const created: AccountJson[] = [];
      for (let i = 0; i < 5; i++) created.push((await attempt(api, user, { item: `ordered-${i}` })).json);
      const ids = created.map((a) => a.id);
      assert.deepEqual([...ids].sort(), ids);
      const times = created.map((a) => a.created_at);
      assert.deepEqual([...times].sort(), times);
      assert.equal(new Set(times).size, times.length);
    });

    it('connected: scanned_at and the connection time are set, error fields empty', async () => {
      const started = (await attempt(api, user, { item: 'item_connect' })).json;
      const res = await report(api, user, started.id, { connection: { status: 'connected' } });
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(Object.keys(res.json), ACCOUNT_KEYS);
      assert.equal(res.json.connection.status, 'connected');
      assert.match(res.json.scanned_at, TIMESTAMP);
      assert.ok(res.json.scanned_at > started.created_at);
      assert.equal(res.json.connection.updated_at, res.json.scanned_at);
      assert.equal(res.json.updated_at, res.json.scanned_at);
      assert.equal(res.json.connection.error_code, null);
      assert.equal(res.json.connection.error_message, null);
      assert.equal(res.json.created_at, started.created_at);
      assert.equal(res.json.id, started.id);
      assert.deepEqual((await getAccount(started.id)).json, res.json);
    });

    it('error: error_message defaults to the message of the code; a given one is kept; scanned_at stays null', async () => {
      const first = (await attempt(api, user, { item: 'item_error_default' })).json;
      const failed = await report(api, user, first.id, { connection: { status: 'error', error_code: 'invalid_credentials' } });
      assert.equal(failed.status, 200, failed.body);
      assert.deepEqual(failed.json.connection, {
        status: 'error',
        error_code: 'invalid_credentials',
        error_message: 'The username or password is wrong.',
        updated_at: failed.json.updated_at,
      });
      assert.equal(failed.json.scanned_at, null);
      assert.deepEqual((await getAccount(first.id)).json, failed.json);

      const second = (await attempt(api, user, { item: 'item_error_message' })).json;
      const given = await report(api, user, second.id, {
        connection: { status: 'error', error_code: 'platform_unavailable', error_message: 'Down for maintenance until 9pm.' },
      });
      assert.equal(given.status, 200, given.body);
      assert.equal(given.json.connection.error_code, 'platform_unavailable');
      assert.equal(given.json.connection.error_message, 'Down for maintenance until 9pm.');
    });

    it('GET and DELETE /v2/accounts/{id} are 404 for an unknown, a malformed and a deleted id', async () => {
      const deleted = (await attempt(api, user, { item: 'item_deleted' })).json.id;
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/accounts/${deleted}` })).status, 204);
      for (const id of [MISSING_ID, 'not-a-uuid', `${MISSING_ID}0`, deleted]) {
        for (const method of ['GET', 'DELETE'] as const) {
          const res = await api.request({ method, url: `/v2/accounts/${id}` });
          assert.equal(res.status, 404, `${method} ${id}: ${res.body}`);
          assert.deepEqual(res.json, NOT_FOUND);
        }
      }
    });
  });

  describe(`accounts: items_connected and employers_connected (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('only connected accounts count: a connecting or failed one shows nothing', async () => {
      const user = await createLinkUser(api);
      await attempt(api, user, { item: 'pending', employers: ['Pending Inc'] });
      assert.deepEqual(await arraysOf(api, user.id), { items: [], employers: [] });
      await fail(api, user, 'failing');
      assert.deepEqual(await arraysOf(api, user.id), { items: [], employers: [] });
      await connect(api, user, 'working', ['Working Ltd']);
      assert.deepEqual(await arraysOf(api, user.id), { items: ['working'], employers: ['Working Ltd'] });
    });

    it('items_connected is in order of first connection, not of creation, and a rescan does not move an item', async () => {
      const user = await createLinkUser(api);
      const a = (await attempt(api, user, { item: 'item_a' })).json;
      const b = (await attempt(api, user, { item: 'item_b' })).json;
      const c = (await attempt(api, user, { item: 'item_c' })).json;
      const connected = { connection: { status: 'connected' } };
      assert.equal((await report(api, user, c.id, connected)).status, 200);
      assert.deepEqual((await arraysOf(api, user.id)).items, ['item_c']);
      assert.equal((await report(api, user, a.id, connected)).status, 200);
      assert.deepEqual((await arraysOf(api, user.id)).items, ['item_c', 'item_a']);
      // A rescan of the first one.
      assert.equal((await report(api, user, c.id, connected)).status, 200);
      assert.deepEqual((await arraysOf(api, user.id)).items, ['item_c', 'item_a']);
      assert.equal((await report(api, user, b.id, connected)).status, 200);
      assert.deepEqual((await arraysOf(api, user.id)).items, ['item_c', 'item_a', 'item_b']);
      // c fails: it leaves the list; reconnected, it takes its place of first connection again.
      assert.equal((await report(api, user, c.id, { connection: { status: 'error', error_code: 'auth_required' } })).status, 200);
      assert.deepEqual((await arraysOf(api, user.id)).items, ['item_a', 'item_b']);
      assert.equal((await attempt(api, user, { item: 'item_c' })).json.connection.status, 'connecting');
      assert.deepEqual((await arraysOf(api, user.id)).items, ['item_a', 'item_b']);
      assert.equal((await report(api, user, c.id, connected)).status, 200);
      assert.deepEqual((await arraysOf(api, user.id)).items, ['item_c', 'item_a', 'item_b']);
    });

    it("employers_connected: distinct, by first connection, each account's employers in their own order", async () => {
      const user = await createLinkUser(api);
      await connect(api, user, 'payroll_1', ['Zeta', 'Alpha', 'Zeta']);
      assert.deepEqual(await arraysOf(api, user.id), { items: ['payroll_1'], employers: ['Zeta', 'Alpha'] });
      const second = await connect(api, user, 'payroll_2', ['Beta', 'Alpha', 'Gamma']);
      assert.deepEqual(await arraysOf(api, user.id), { items: ['payroll_1', 'payroll_2'], employers: ['Zeta', 'Alpha', 'Beta', 'Gamma'] });
      // An employer of an account that is not connected does not count.
      await attempt(api, user, { item: 'payroll_3', employers: ['Omega', 'Beta'] });
      assert.deepEqual((await arraysOf(api, user.id)).employers, ['Zeta', 'Alpha', 'Beta', 'Gamma']);
      // The first account fails: its own employers go, shared ones stay in the order of the second.
      await fail(api, user, 'payroll_1', 'mfa_timeout');
      assert.deepEqual(await arraysOf(api, user.id), { items: ['payroll_2'], employers: ['Beta', 'Alpha', 'Gamma'] });
      // Reconnected with other employers: they come first again (its first connection is the earliest).
      await connect(api, user, 'payroll_1', ['Delta', 'Beta']);
      assert.deepEqual(await arraysOf(api, user.id), { items: ['payroll_1', 'payroll_2'], employers: ['Delta', 'Beta', 'Alpha', 'Gamma'] });
      // A rescan that reports new employers replaces the account's.
      const rescan = await report(api, user, second.id, { connection: { status: 'connected' }, employers: ['Gamma'] });
      assert.equal(rescan.status, 200, rescan.body);
      assert.deepEqual(rescan.json.employers, ['Gamma']);
      assert.deepEqual((await arraysOf(api, user.id)).employers, ['Delta', 'Beta', 'Gamma']);
      // A report without employers keeps the account's.
      const again = await report(api, user, second.id, { connection: { status: 'connected' } });
      assert.deepEqual(again.json.employers, ['Gamma']);
      assert.deepEqual((await arraysOf(api, user.id)).employers, ['Delta', 'Beta', 'Gamma']);
    });

    it("an account's employers keep their order past the tenth (positions are compared as numbers)", async () => {
      const user = await createLinkUser(api);
      const employers = Array.from({ length: 20 }, (_, i) => `Employer ${String.fromCharCode(90 - i)}`);
      await connect(api, user, 'many', employers);
      assert.deepEqual((await arraysOf(api, user.id)).employers, employers);
    });

    it('the arrays read the same in GET /v2/users/{id} and in GET /v2/users', async () => {
      const user = await createLinkUser(api, { external_id: 'arrays-in-list' });
      await connect(api, user, 'listed_b', ['B Corp']);
      await connect(api, user, 'listed_a', ['A Corp', 'B Corp']);
      const one = (await getUser(api, user.id)).json;
      assert.deepEqual(one.items_connected, ['listed_b', 'listed_a']);
      assert.deepEqual(one.employers_connected, ['B Corp', 'A Corp']);
      const list = await api.request({ method: 'GET', url: '/v2/users?external_id=arrays-in-list' });
      assert.equal(list.status, 200);
      assert.deepEqual(list.json.results, [one]);
    });

    it('DELETE /v2/accounts/{id} is 204 and the arrays no longer count the account; the row is gone', async () => {
      const user = await createLinkUser(api);
      const kept = await connect(api, user, 'kept', ['Shared', 'Kept Co']);
      const removed = await connect(api, user, 'removed', ['Removed Co', 'Shared']);
      assert.deepEqual(await arraysOf(api, user.id), { items: ['kept', 'removed'], employers: ['Shared', 'Kept Co', 'Removed Co'] });
      const res = await api.request({ method: 'DELETE', url: `/v2/accounts/${removed.id}` });
      assert.equal(res.status, 204);
      assert.equal(res.body, '');
      assert.deepEqual(await arraysOf(api, user.id), { items: ['kept'], employers: ['Shared', 'Kept Co'] });
      assert.deepEqual((await accountRows(api.db, user.id)).map((r) => r.id), [kept.id]);
      assert.equal((await api.request({ method: 'GET', url: `/v2/accounts/${removed.id}` })).status, 404);
      // The item can be connected again: a new account.
      const again = await attempt(api, user, { item: 'removed' });
      assert.equal(again.status, 201);
      assert.notEqual(again.json.id, removed.id);
    });

    it("every connection change moves the user's ETag; a refused report does not", async () => {
      const user = await createLinkUser(api);
      const etag = async () => String((await getUser(api, user.id)).headers.etag);
      const seen = [await etag()];
      const account = (await attempt(api, user, { item: 'etag_item' })).json;
      const changes = [
        () => report(api, user, account.id, { connection: { status: 'connected' } }),
        () => report(api, user, account.id, { connection: { status: 'connected' }, employers: ['E'] }),
        () => report(api, user, account.id, { connection: { status: 'error', error_code: 'system_error' } }),
      ];
      for (const change of changes) {
        assert.equal((await change()).status, 200);
        seen.push(await etag());
      }
      // Refused: 409 (the last attempt failed) and 400: nothing changes.
      assert.equal((await report(api, user, account.id, { connection: { status: 'connected' } })).status, 409);
      assert.equal((await report(api, user, account.id, { connection: { status: 'bogus' } })).status, 400);
      assert.equal(await etag(), seen.at(-1));
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/accounts/${account.id}` })).status, 204);
      seen.push(await etag());
      for (const tag of seen) assert.match(tag, /^"v\d+"$/);
      assert.equal(new Set(seen).size, seen.length, `ETags repeat: ${seen.join(' ')}`);
    });

    it('a user PATCH keeps the arrays', async () => {
      const user = await createLinkUser(api);
      await connect(api, user, 'patched_item', ['Patched Co']);
      const res = await api.request({ method: 'PATCH', url: `/v2/users/${user.id}`, payload: { first_name: 'New' } });
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(res.json.items_connected, ['patched_item']);
      assert.deepEqual(res.json.employers_connected, ['Patched Co']);
    });
  });

  describe(`accounts: deleting the user (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('DELETE /v2/users/{id} deletes its accounts in every state; other users keep theirs', async () => {
      const doomed = await createLinkUser(api, { first_name: 'Doomed' });
      const other = await createLinkUser(api, { first_name: 'Other' });
      const ids = [
        (await connect(api, doomed, 'doomed_connected', ['D Corp'])).id,
        (await fail(api, doomed, 'doomed_failed')).id,
        (await attempt(api, doomed, { item: 'doomed_connecting' })).json.id,
      ];
      const otherAccount = await connect(api, other, 'doomed_connected', ['D Corp']);
      assert.equal((await accountRows(api.db, doomed.id)).length, 3);

      const res = await api.request({ method: 'DELETE', url: `/v2/users/${doomed.id}` });
      assert.equal(res.status, 204, res.body);
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${doomed.id}` })).status, 404);
      for (const id of ids) assert.equal((await api.request({ method: 'GET', url: `/v2/accounts/${id}` })).status, 404);
      const listed = await api.request({ method: 'GET', url: `/v2/accounts?user=${doomed.id}` });
      assert.deepEqual(listed.json.results, []);
      assert.deepEqual(await accountRows(api.db, doomed.id), []);
      assert.deepEqual(await api.db.selectFrom('users').select('id').where('id', '=', doomed.id).execute(), []);

      assert.deepEqual((await api.request({ method: 'GET', url: `/v2/accounts/${otherAccount.id}` })).json, otherAccount);
      assert.deepEqual(await arraysOf(api, other.id), { items: ['doomed_connected'], employers: ['D Corp'] });
    });

    it('the accounts go with the user row itself (ON DELETE CASCADE): no second delete that a crash could skip', async () => {
      const user = await createLinkUser(api);
      await connect(api, user, 'cascade_1');
      await attempt(api, user, { item: 'cascade_2' });
      assert.equal((await accountRows(api.db, user.id)).length, 2);
      // Only the users row is deleted, as one statement outside the service.
      await api.db.deleteFrom('users').where('client_id', '=', api.tenant.client_id).where('id', '=', user.id).execute();
      assert.deepEqual(await accountRows(api.db, user.id), []);
    });

    it('an account row without its user cannot be stored', async () => {
      const user = await createLinkUser(api);
      const [row] = await accountRows(api.db, (await connect(api, user, 'template')).user);
      assert.ok(row);
      await assert.rejects(
        api.db
          .insertInto('accounts')
          .values({ ...row, id: MISSING_ID, user_id: '0190a4e2-0000-7000-8000-000000000001', item: 'orphan' })
          .execute(),
      );
      assert.equal((await accountRows(api.db, '0190a4e2-0000-7000-8000-000000000001')).length, 0);
    });

    it('DELETE /v2/users/{id} with an If-Match from before a connection change is 412 and keeps the accounts', async () => {
      const user = await createLinkUser(api);
      const account = (await attempt(api, user, { item: 'guarded' })).json;
      const stale = String((await getUser(api, user.id)).headers.etag);
      assert.equal((await report(api, user, account.id, { connection: { status: 'connected' } })).status, 200);
      const refused = await api.request({ method: 'DELETE', url: `/v2/users/${user.id}`, headers: { 'if-match': stale } });
      assert.equal(refused.status, 412, refused.body);
      assert.equal((await accountRows(api.db, user.id)).length, 1);
      const current = String((await getUser(api, user.id)).headers.etag);
      const deleted = await api.request({ method: 'DELETE', url: `/v2/users/${user.id}`, headers: { 'if-match': current } });
      assert.equal(deleted.status, 204, deleted.body);
      assert.deepEqual(await accountRows(api.db, user.id), []);
    });
  });

  describe(`GET /v2/accounts (${store})`, () => {
    let api: TestApi;
    let users: LinkUser[];
    /** All accounts of the tenant, in creation order. */
    const all: AccountJson[] = [];
    const list = (query = '') => api.request({ method: 'GET', url: `/v2/accounts${query}` });

    before(async () => {
      api = await createTestApi(store);
      users = [];
      for (let i = 0; i < 5; i++) users.push(await createLinkUser(api));
      // 25 accounts: item "shared" for each of the 5 users, then 20 items of their own.
      for (let i = 0; i < 25; i++) all.push((await attempt(api, users[i % 5]!, { item: i < 5 ? 'shared' : `item-${i}` })).json);
    });
    after(() => api.close());

    it('returns {next, previous, results}, 10 by default, oldest first', async () => {
      const res = await list();
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(Object.keys(res.json), ['next', 'previous', 'results']);
      assert.equal(res.json.previous, null);
      assert.match(res.json.next, /^http:\/\/localhost(:80)?\/v2\/accounts\?cursor=[\w.-]+$/);
      assert.deepEqual(res.json.results, all.slice(0, 10));
      for (const account of res.json.results) assert.deepEqual(Object.keys(account), ACCOUNT_KEYS);
    });

    it('rejects a limit that is not a positive integer, as the users list does', async () => {
      for (const [limit, message] of INVALID_LIMITS) {
        const res = await list(`?limit=${limit}`);
        assert.equal(res.status, 400, limit);
        assert.deepEqual(res.json, { limit: [message] }, limit);
      }
      for (const limit of ['2', '+2', '%202%20', '2.0']) {
        const res = await list(`?limit=${limit}`);
        assert.equal(res.status, 200, limit);
        assert.deepEqual(idsOf(res), all.slice(0, 2).map((a) => a.id), limit);
      }
    });

    it('filters by user (exact id)', async () => {
      const res = await list(`?user=${users[0]!.id}&limit=200`);
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(res.json.results, all.filter((a) => a.user === users[0]!.id));
      assert.equal(res.json.results.length, 5);
      assert.equal(res.json.next, null);
      assert.deepEqual((await list(`?user=${MISSING_ID}`)).json.results, []);
    });

    it('a user filter that is not a UUID is 400 {"user": ["Enter a valid UUID."]}', async () => {
      for (const bad of ['not-a-uuid', '123', `${users[0]!.id}0`, users[0]!.id.slice(0, -1), '']) {
        const res = await list(`?user=${encodeURIComponent(bad)}`);
        assert.equal(res.status, 400, `${bad}: ${res.body}`);
        assert.deepEqual(res.json, { user: ['Enter a valid UUID.'] }, bad);
      }
    });

    it('filters by item (exact: neither case nor prefix matches), alone and with user', async () => {
      const shared = await list('?item=shared&limit=200');
      assert.deepEqual(shared.json.results, all.slice(0, 5));
      assert.deepEqual((await list('?item=SHARED')).json.results, []);
      assert.deepEqual((await list('?item=share')).json.results, []);
      assert.deepEqual((await list('?item=item-1')).json.results, []);
      assert.deepEqual(idsOf(await list('?item=item-12')), [all[12]!.id]);
      const both = await list(`?item=shared&user=${users[3]!.id}`);
      assert.deepEqual(idsOf(both), [all[3]!.id]);
      assert.deepEqual((await list(`?item=item-12&user=${users[3]!.id}`)).json.results, []);
    });

    it('seals limit and filters in the cursor, and still works when they are repeated beside it', async () => {
      const user = users[1]!.id;
      const first = await list(`?user=${user}&limit=2`);
      const mine = all.filter((a) => a.user === user);
      assert.deepEqual(first.json.results, mine.slice(0, 2));
      const second = await api.request({ method: 'GET', url: follow(first.json.next) });
      assert.deepEqual(second.json.results, mine.slice(2, 4));
      const repeated = await api.request({ method: 'GET', url: `${follow(first.json.next)}&limit=2&user=${user}` });
      assert.equal(repeated.status, 200, repeated.body);
      assert.deepEqual(repeated.json.results, second.json.results);
      const third = await api.request({ method: 'GET', url: follow(second.json.next) });
      assert.deepEqual(third.json.results, mine.slice(4));
      assert.equal(third.json.next, null);
      const back = await api.request({ method: 'GET', url: follow(third.json.previous) });
      assert.deepEqual(back.json.results, mine.slice(2, 4));
      // The cursor shows neither the filter nor the position.
      const cursor = new URL(first.json.next).searchParams.get('cursor') ?? '';
      const bytes = Buffer.from(cursor, 'base64url').toString('latin1');
      for (const needle of [user, mine[1].id, 'user']) assert.equal(bytes.includes(needle) || cursor.includes(needle), false, needle);
    });

    it('walks forward to the end and back with previous links', async () => {
      const pages: string[][] = [];
      let res = await list('?limit=7');
      assert.equal(res.json.previous, null);
      for (;;) {
        pages.push(idsOf(res));
        if (res.json.next === null) break;
        res = await api.request({ method: 'GET', url: follow(res.json.next) });
      }
      assert.deepEqual(pages.flat(), all.map((a) => a.id));
      for (let i = pages.length - 2; i >= 0; i--) {
        res = await api.request({ method: 'GET', url: follow(res.json.previous) });
        assert.deepEqual(idsOf(res), pages[i]);
      }
      assert.equal(res.json.previous, null);
    });

    it('rejects a tampered or made-up cursor with 400 "Invalid cursor"', async () => {
      const first = await list('?limit=2');
      const cursor = new URL(first.json.next).searchParams.get('cursor') ?? '';
      assert.equal((await list(`?cursor=${cursor}`)).status, 200);
      const bytes = Buffer.from(cursor, 'base64url');
      const flip = (i: number) => {
        const copy = Buffer.from(bytes);
        copy[i] = (copy[i] ?? 0) ^ 1;
        return copy.toString('base64url');
      };
      for (const bad of ['garbage', '', flip(0), flip(5), flip(bytes.length - 1), flip(20), cursor.slice(0, -2), `${cursor}A`]) {
        const res = await list(`?cursor=${encodeURIComponent(bad)}`);
        assert.equal(res.status, 400, bad);
        assert.deepEqual(res.json, { detail: 'Invalid cursor' }, bad);
      }
    });

    it('a cursor is bound to its list: a users cursor is invalid here, and an accounts cursor on /v2/users', async () => {
      const usersPage = await api.request({ method: 'GET', url: '/v2/users?limit=2' });
      const usersCursor = new URL(usersPage.json.next).searchParams.get('cursor') ?? '';
      const accountsCursor = new URL((await list('?limit=2')).json.next).searchParams.get('cursor') ?? '';
      const linkPage = await linkRequest(api, users[0]!.token, { method: 'GET', url: '/v2/link/accounts?limit=2' });
      const linkCursor = new URL(linkPage.json.next).searchParams.get('cursor') ?? '';
      for (const cursor of [usersCursor, linkCursor]) {
        const res = await list(`?cursor=${cursor}`);
        assert.equal(res.status, 400, res.body);
        assert.deepEqual(res.json, { detail: 'Invalid cursor' });
      }
      const res = await api.request({ method: 'GET', url: `/v2/users?cursor=${accountsCursor}` });
      assert.equal(res.status, 400, res.body);
      assert.deepEqual(res.json, { detail: 'Invalid cursor' });
    });

    it('a walk finds each account exactly once while others are created and deleted', async () => {
      const walker = await api.newTenant('walker');
      const owner = await createLinkUser(api, {}, walker);
      const stable = new Set<string>();
      const volatile: string[] = [];
      for (let i = 0; i < 60; i++) {
        stable.add((await attempt(api, owner, { item: `stable-${i}` })).json.id);
        if (i % 5 === 0) volatile.push((await attempt(api, owner, { item: `volatile-${i}` })).json.id);
      }
      const seen = new Map<string, number>();
      let url: string | null = '/v2/accounts?limit=7';
      let pages = 0;
      while (url) {
        const res = await api.request({ method: 'GET', url, as: walker });
        assert.equal(res.status, 200, res.body);
        for (const account of res.json.results) seen.set(account.id, (seen.get(account.id) ?? 0) + 1);
        const victim = volatile.splice(pages % 2 === 0 ? 0 : -1, 1)[0];
        if (victim) assert.equal((await api.request({ method: 'DELETE', url: `/v2/accounts/${victim}`, as: walker })).status, 204);
        volatile.push((await attempt(api, owner, { item: `churn-${pages}` })).json.id);
        url = res.json.next ? follow(res.json.next) : null;
        pages++;
      }
      for (const id of stable) assert.equal(seen.get(id), 1, `stable account ${id} seen ${seen.get(id) ?? 0} times`);
      for (const [id, count] of seen) assert.equal(count, 1, `${id} seen ${count} times`);
    });

    it('treats a limit above 200 as 200', async () => {
      const owner = users[4]!;
      for (let i = 0; i < 180; i++) await attempt(api, owner, { item: `bulk-${i}` });
      const res = await list('?limit=1000');
      assert.equal(res.status, 200);
      assert.equal(res.json.results.length, 200);
      assert.notEqual(res.json.next, null);
      const rest = await api.request({ method: 'GET', url: follow(res.json.next) });
      assert.equal(rest.json.results.length, 205 - 200);
      assert.equal(rest.json.next, null);
    });
  });

  describe(`accounts: validation (${store})`, () => {
    let api: TestApi;
    let user: LinkUser;
    let account: AccountJson;
    before(async () => {
      api = await createTestApi(store);
      user = await createLinkUser(api);
      account = (await attempt(api, user, { item: 'validated' })).json;
    });
    after(() => api.close());

    const snapshot = async () => JSON.stringify(await accountRows(api.db));
    const post = (payload: unknown) =>
      linkRequest(api, user.token, { method: 'POST', url: '/v2/link/accounts', payload: payload as object });

    it('POST /v2/link/accounts: item required, a string of 1 to 100 characters; at most 20 employers of 1 to 255 characters', async () => {
      const before = await snapshot();
      const cases: Array<[unknown, object]> = [
        [{}, { item: ['This field is required.'] }],
        [{ source: 'x' }, { item: ['This field is required.'] }],
        [{ item: '' }, { item: ['This field may not be blank.'] }],
        [{ item: 'x'.repeat(101) }, { item: ['Ensure this field has no more than 100 characters.'] }],
        [{ item: 12 }, { item: ['Not a valid string.'] }],
        [{ item: null }, { item: ['Not a valid string.'] }],
        [{ item: 'ok', source: 'x'.repeat(101) }, { source: ['Ensure this field has no more than 100 characters.'] }],
        [{ item: 'ok', employers: 'Acme' }, { employers: ['Expected a list of items but got type "str".'] }],
        [
          { item: 'ok', employers: Array.from({ length: 21 }, (_, i) => `E${i}`) },
          { employers: ['Ensure this field has no more than 20 elements.'] },
        ],
        [{ item: 'ok', employers: ['fine', 'x'.repeat(256)] }, { employers: { 1: ['Ensure this field has no more than 255 characters.'] } }],
        [{ item: 'ok', employers: ['fine', 7] }, { employers: { 1: ['Not a valid string.'] } }],
        [{ item: 'x'.repeat(101), employers: 'Acme' }, {
          item: ['Ensure this field has no more than 100 characters.'],
          employers: ['Expected a list of items but got type "str".'],
        }],
        [{ item: 'bad\u0000nul' }, { item: ['Null characters are not allowed.'] }],
        [[], { non_field_errors: ['Invalid data. Expected a dictionary, but got list.'] }],
      ];
      for (const [payload, expected] of cases) {
        const res = await post(payload);
        assert.equal(res.status, 400, `${JSON.stringify(payload).slice(0, 80)}: ${res.status} ${res.body}`);
        assert.deepEqual(res.json, expected, JSON.stringify(payload).slice(0, 80));
      }
      assert.equal(await snapshot(), before, 'nothing stored');
      // The limits themselves are accepted.
      const edge = await post({ item: 'y'.repeat(100), employers: Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(255, 'e')) });
      assert.equal(edge.status, 201, edge.body);
      assert.equal(edge.json.employers.length, 20);
    });

    it('POST /v2/link/accounts: a body that is not JSON is 400, of another media type 415', async () => {
      const broken = await linkRequest(api, user.token, {
        method: 'POST',
        url: '/v2/link/accounts',
        payload: '{"item": ',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(broken.status, 400, broken.body);
      assert.match(broken.json.detail, /^JSON parse error - /);
      const text = await linkRequest(api, user.token, {
        method: 'POST',
        url: '/v2/link/accounts',
        payload: 'item=x',
        headers: { 'content-type': 'text/plain' },
      });
      assert.equal(text.status, 415, text.body);
      assert.deepEqual(text.json, { detail: 'Unsupported media type "text/plain" in request.' });
    });

    it('PATCH /v2/link/accounts/{id}: connection required; status connected|error; error_code from the documented list', async () => {
      const before = await snapshot();
      const cases: Array<[unknown, object]> = [
        [{}, { connection: ['This field is required.'] }],
        [{ employers: ['x'] }, { connection: ['This field is required.'] }],
        [{ connection: 'connected' }, { connection: { non_field_errors: ['Invalid data. Expected a dictionary, but got str.'] } }],
        [{ connection: {} }, { connection: { status: ['This field is required.'] } }],
        [{ connection: { status: 'x' } }, { connection: { status: ['"x" is not a valid choice.'] } }],
        [{ connection: { status: 'connecting' } }, { connection: { status: ['"connecting" is not a valid choice.'] } }],
        [{ connection: { status: 'error', error_code: 'x' } }, { connection: { error_code: ['"x" is not a valid choice.'] } }],
        [{ connection: { status: 'error' } }, { connection: { error_code: ['This field is required when status is "error".'] } }],
        [{ connection: { status: 'error', error_code: null } }, { connection: { error_code: ['This field is required when status is "error".'] } }],
        [
          { connection: { status: 'connected', error_code: 'system_error' } },
          { connection: { non_field_errors: ['error_code and error_message must be empty when status is "connected".'] } },
        ],
        [
          { connection: { status: 'connected', error_message: 'nope' } },
          { connection: { non_field_errors: ['error_code and error_message must be empty when status is "connected".'] } },
        ],
        [
          { connection: { status: 'error', error_code: 'system_error', error_message: 'm'.repeat(1001) } },
          { connection: { error_message: ['Ensure this field has no more than 1000 characters.'] } },
        ],
        [
          { connection: { status: 'connected' }, employers: Array.from({ length: 21 }, (_, i) => `E${i}`) },
          { employers: ['Ensure this field has no more than 20 elements.'] },
        ],
        [{ connection: { status: 'connected' }, employers: [''] }, { employers: { 0: ['This field may not be blank.'] } }],
      ];
      for (const [payload, expected] of cases) {
        const res = await report(api, user, account.id, payload as object);
        assert.equal(res.status, 400, `${JSON.stringify(payload).slice(0, 80)}: ${res.status} ${res.body}`);
        assert.deepEqual(res.json, expected, JSON.stringify(payload).slice(0, 80));
      }
      assert.equal(await snapshot(), before, 'nothing changed');
      // Every documented code is accepted (each on an account of its own: an account in error takes no report).
      const codes = [
        'account_disabled', 'account_inaccessible', 'auth_required', 'expired_credentials', 'invalid_auth', 'invalid_credentials',
        'invalid_mfa', 'login_cancelled_by_the_user', 'mfa_cancelled_by_the_user', 'mfa_exhausted', 'mfa_not_configured',
        'mfa_timeout', 'physical_mfa_unsupported', 'platform_unavailable', 'system_error', 'unsupported_auth_type',
        'unsupported_mfa_method',
      ];
      for (const code of codes) {
        const failed = await fail(api, user, `code-${code}`, code);
        assert.equal(failed.connection.error_code, code);
        assert.equal(typeof failed.connection.error_message, 'string');
        assert.ok(failed.connection.error_message.length > 0, code);
      }
    });

    it('PATCH of an unknown, a malformed or a deleted account is 404', async () => {
      const deleted = (await attempt(api, user, { item: 'gone' })).json.id;
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/accounts/${deleted}` })).status, 204);
      for (const id of [MISSING_ID, 'not-a-uuid', deleted]) {
        const res = await report(api, user, id, { connection: { status: 'connected' } });
        assert.equal(res.status, 404, `${id}: ${res.body}`);
        assert.deepEqual(res.json, NOT_FOUND);
      }
    });
  });
}
