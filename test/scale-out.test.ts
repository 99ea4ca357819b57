// Scale-out: two real server processes over one PostgreSQL schema behave as one service.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { basicAuth, openStore, STORES, TEST_DATABASE_URL, type TestStore } from './helpers/app.js';
import {
  cleanUpProcesses,
  SERVE_TIMEOUT_MS,
  startServer,
  STOP_TIMEOUT_MS,
  stopServer,
  type ServerProcess as Instance,
} from './helpers/process.js';

const REQUEST_TIMEOUT_MS = 15_000;
/** Shared by both instances, as an operator would configure it; at least 32 characters. */
const SHARED_SECRET = 'scale-out-shared-secret-0123456789-abcdefghij';
/** Field-encryption keys, which every instance on PostgreSQL must also share (ignored where not known). */
const SHARED_PII_KEYS = `scale1:${Buffer.alloc(32, 9).toString('base64')}`;

interface HttpResult {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  text: string;
}

/** A real HTTP request to `instance` (or to an absolute URL), as `key` unless key is null. */
async function call(
  target: Instance | string,
  method: string,
  path: string,
  key: IssuedKey | null,
  body?: unknown,
): Promise<HttpResult> {
  const url = typeof target === 'string' ? target : `${target.base}${path}`;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (key) headers.authorization = basicAuth(key);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** The same link, sent to another instance: only the origin changes, the path and cursor are kept. */
function on(instance: Instance, link: string): string {
  const url = new URL(link);
  return `${instance.base}${url.pathname}${url.search}`;
}

after(cleanUpProcesses);

if (!STORES.includes('postgres')) {
  console.log(`# PostgreSQL not reachable at ${TEST_DATABASE_URL}: skipping the two-instance scale-out tests`);
}
const suite = STORES.includes('postgres')
  ? describe
  : describe.skip;

suite(`scale-out: two server processes on one PostgreSQL${STORES.includes('postgres') ? '' : ' (skipped: PostgreSQL not reachable)'}`, () => {
  let store: TestStore;
  let key: IssuedKey;
  let a: Instance;
  let b: Instance;

  before(async () => {
    store = await openStore('postgres');
    key = await createApiKey(store.db, { name: 'scale-out' });
    const env = { ...store.env, USER_TOKEN_SECRET: SHARED_SECRET, PII_KEYS: SHARED_PII_KEYS };
    [a, b] = await Promise.all([startServer(env, { name: 'A' }), startServer(env, { name: 'B' })]);
    assert.notEqual(a.base, b.base, 'two distinct listeners');
  });

  after(async () => {
    for (const instance of [a, b]) {
      if (instance && instance.child.exitCode === null && instance.child.signalCode === null) instance.child.kill('SIGKILL');
    }
    await store?.drop();
  });

  it('both instances answer /readyz and /healthz with 200', { timeout: 20_000 }, async () => {
    for (const instance of [a, b]) {
      for (const path of ['/readyz', '/healthz']) {
        const res = await call(instance, 'GET', path, null);
        assert.equal(res.status, 200, `${instance.name} ${path}: ${res.text}`);
        assert.deepEqual(res.json, { status: 'ok' });
      }
    }
  });

  it('a user created through A is read, updated and deleted through B', { timeout: 30_000 }, async () => {
    const input = {
      external_id: 'ext-scale-1',
      first_name: 'Ada',
      last_name: 'Lovelace',
      email: 'ada@example.com',
      address: { city: 'London', country: 'GB' },
      birth_date: { year: 1990, month: 12, day: 10 },
      external_metadata: { team: 'analytical', n: 1 },
    };
    const created = await call(a, 'POST', '/v2/users', key, input);
    assert.equal(created.status, 200, created.text);
    const id = created.json.id as string;

    const onB = await call(b, 'GET', `/v2/users/${id}`, key);
    assert.equal(onB.status, 200, onB.text);
    assert.equal(onB.json.id, id);
    assert.equal(onB.json.external_id, 'ext-scale-1');
    assert.equal(onB.json.first_name, 'Ada');
    assert.equal(onB.json.last_name, 'Lovelace');
    assert.equal(onB.json.email, 'ada@example.com');
    assert.equal(onB.json.address.city, 'London');
    assert.equal(onB.json.address.country, 'GB');
    assert.deepEqual(onB.json.birth_date, { year: 1990, month: 12, day: 10 });
    assert.deepEqual(onB.json.external_metadata, { team: 'analytical', n: 1 });
    const onA = await call(a, 'GET', `/v2/users/${id}`, key);
    assert.deepEqual(onA.json, onB.json, 'both instances return the same representation');

    const filtered = await call(b, 'GET', '/v2/users?external_id=ext-scale-1', key);
    assert.equal(filtered.status, 200, filtered.text);
    assert.deepEqual(
      filtered.json.results.map((u: { id: string }) => u.id),
      [id],
    );

    const patched = await call(b, 'PATCH', `/v2/users/${id}`, key, { first_name: 'Augusta' });
    assert.equal(patched.status, 200, patched.text);
    const seenOnA = await call(a, 'GET', `/v2/users/${id}`, key);
    assert.equal(seenOnA.json.first_name, 'Augusta', 'A sees the update made through B');
    assert.equal(seenOnA.json.last_name, 'Lovelace');

    const deleted = await call(b, 'DELETE', `/v2/users/${id}`, key);
    assert.equal(deleted.status, 204, deleted.text);
    for (const instance of [a, b]) {
      const gone = await call(instance, 'GET', `/v2/users/${id}`, key);
      assert.equal(gone.status, 404, `${instance.name} still serves the deleted user: ${gone.text}`);
    }
    const again = await call(a, 'DELETE', `/v2/users/${id}`, key);
    assert.equal(again.status, 404, 'deleting it again through A finds nothing');
  });

  it('a walk alternating between A and B, following next links from each on the other, sees every user once', { timeout: 60_000 }, async () => {
    // A separate tenant, so the walk sees exactly the users made here.
    const tenant = await createApiKey(store.db, { name: 'paging' });
    const ids: string[] = [];
    for (let i = 0; i < 11; i++) {
      const res = await call(i % 2 === 0 ? a : b, 'POST', '/v2/users', tenant, { external_id: `page-${i}` });
      assert.equal(res.status, 200, res.text);
      ids.push(res.json.id as string);
    }
    const expected = [...ids].sort();
    assert.deepEqual(ids, expected, 'ids are time-ordered (UUIDv7) even across instances');

    const seen: string[] = [];
    const pages: string[][] = [];
    let page = await call(a, 'GET', '/v2/users?limit=3', tenant);
    const links: { from: string; next: string }[] = [];
    for (let hop = 0; ; hop++) {
      assert.equal(page.status, 200, page.text);
      const pageIds = page.json.results.map((u: { id: string }) => u.id) as string[];
      pages.push(pageIds);
      seen.push(...pageIds);
      if (page.json.next === null) break;
      assert.ok(hop < 10, 'the walk ends');
      const next = page.json.next as string;
      // Hop 0 came from A, so its link is followed on B, and so on.
      const from = hop % 2 === 0 ? a : b;
      const to = hop % 2 === 0 ? b : a;
      assert.ok(next.startsWith(`${from.base}/v2/users?cursor=`), `next link points at the instance that made it: ${next}`);
      links.push({ from: from.name, next });
      page = await call(on(to, next), 'GET', '', tenant);
    }
    assert.deepEqual(seen, expected, 'every user exactly once, oldest first');
    assert.deepEqual(
      pages.map((p) => p.length),
      [3, 3, 3, 2],
    );
    assert.ok(links.some((l) => l.from === 'A') && links.some((l) => l.from === 'B'), 'links from both instances were followed');

    // And back: the previous link of the last page (made by the last instance) followed on the other one.
    const lastServedBy = pages.length % 2 === 1 ? a : b;
    const other = lastServedBy === a ? b : a;
    assert.ok(page.json.previous, 'the last page has a previous link');
    const back = await call(on(other, page.json.previous as string), 'GET', '', tenant);
    assert.equal(back.status, 200, back.text);
    assert.deepEqual(
      back.json.results.map((u: { id: string }) => u.id),
      pages.at(-2),
    );

    // Deleted through B, gone from A's listing.
    for (const id of ids.slice(0, 4)) {
      const res = await call(b, 'DELETE', `/v2/users/${id}`, tenant);
      assert.equal(res.status, 204, res.text);
    }
    const rest = await call(a, 'GET', '/v2/users?limit=200', tenant);
    assert.deepEqual(
      rest.json.results.map((u: { id: string }) => u.id),
      expected.slice(4),
    );
  });

  it('a cursor made by A gives the same page on A and on B, and each instance accepts the other one\'s', { timeout: 30_000 }, async () => {
    const tenant = await createApiKey(store.db, { name: 'cursors' });
    for (let i = 0; i < 5; i++) {
      const res = await call(b, 'POST', '/v2/users', tenant, { external_id: 'same' });
      assert.equal(res.status, 200, res.text);
    }
    for (const [maker, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const first = await call(maker, 'GET', '/v2/users?limit=2&external_id=same', tenant);
      assert.equal(first.status, 200, first.text);
      const cursor = new URL(first.json.next as string).searchParams.get('cursor');
      assert.ok(cursor, 'a cursor');
      const here = await call(maker, 'GET', `/v2/users?cursor=${encodeURIComponent(cursor)}`, tenant);
      const there = await call(other, 'GET', `/v2/users?cursor=${encodeURIComponent(cursor)}`, tenant);
      assert.equal(there.status, 200, `${other.name} rejected ${maker.name}'s cursor: ${there.text}`);
      assert.deepEqual(
        there.json.results.map((u: { id: string }) => u.id),
        here.json.results.map((u: { id: string }) => u.id),
      );
      assert.equal(there.json.results.length, 2, 'the cursor carries the limit');
      // Each seals its own cursor (a random IV each time), and each one's next link gives the same page on the other.
      const [hereNext, thereNext] = await Promise.all([
        call(on(other, here.json.next as string), 'GET', '', tenant),
        call(on(maker, there.json.next as string), 'GET', '', tenant),
      ]);
      assert.equal(hereNext.status, 200, hereNext.text);
      assert.equal(thereNext.json.results.length, 1);
      assert.deepEqual(
        thereNext.json.results.map((u: { id: string }) => u.id),
        hereNext.json.results.map((u: { id: string }) => u.id),
      );
    }
    // A cursor is a tenant's own: another tenant cannot use it on either instance.
    const first = await call(a, 'GET', '/v2/users?limit=2', tenant);
    const stranger = await call(on(b, first.json.next as string), 'GET', '', key);
    assert.equal(stranger.status, 400, `another tenant's cursor must be rejected: ${stranger.status} ${stranger.text}`);
  });

  it('a token minted by one instance is active on the other, and inactive on both once its user is deleted', { timeout: 30_000 }, async () => {
    const created = await call(a, 'POST', '/v2/users', key, { first_name: 'Token' });
    assert.equal(created.status, 200, created.text);
    const { id, user_token: fromCreate } = created.json as { id: string; user_token: string };

    const minted = await call(b, 'POST', '/v2/user-tokens', key, { user: id });
    assert.equal(minted.status, 200, minted.text);
    const fromB = minted.json.user_token as string;

    for (const [token, instance] of [
      [fromCreate, b],
      [fromCreate, a],
      [fromB, a],
      [fromB, b],
    ] as const) {
      const res = await call(instance, 'POST', '/v2/user-tokens/introspect', key, { user_token: token });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.active, true, `${instance.name}: ${res.text}`);
      assert.equal(res.json.user_id, id);
      assert.equal(res.json.client_id, key.client_id);
    }

    const deleted = await call(a, 'DELETE', `/v2/users/${id}`, key);
    assert.equal(deleted.status, 204, deleted.text);
    for (const token of [fromCreate, fromB]) {
      for (const instance of [a, b]) {
        const res = await call(instance, 'POST', '/v2/user-tokens/introspect', key, { user_token: token });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json, { active: false }, `${instance.name} still reports a deleted user's token active`);
      }
    }
    const noMint = await call(b, 'POST', '/v2/user-tokens', key, { user: id });
    assert.equal(noMint.status, 400, 'no token for a deleted user');
  });

  it('40 concurrent PATCHes of one user through both instances leave exactly one written state, never a mixture', { timeout: 60_000 }, async () => {
    const created = await call(a, 'POST', '/v2/users', key, { first_name: 'start', last_name: 'start' });
    assert.equal(created.status, 200, created.text);
    const id = created.json.id as string;
    const N = 40;
    const write = (i: number) => ({
      first_name: `f-${i}`,
      last_name: `l-${i}`,
      address: { city: `c-${i}` },
      external_metadata: { i },
    });
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => call(i % 2 === 0 ? a : b, 'PATCH', `/v2/users/${id}`, key, write(i))),
    );
    const succeeded: number[] = [];
    const gaveUp: number[] = [];
    results.forEach((res, i) => {
      if (res.status === 503) {
        // Bounded optimistic retries may give up under contention: then nothing of that write is stored.
        assert.ok(typeof res.json?.detail === 'string', res.text);
        gaveUp.push(i);
        return;
      }
      assert.equal(res.status, 200, `PATCH ${i}: ${res.status} ${res.text}`);
      // Each response is the state this write produced: all four fields from the same write.
      assert.equal(res.json.first_name, `f-${i}`);
      assert.equal(res.json.last_name, `l-${i}`);
      assert.equal(res.json.address.city, `c-${i}`);
      assert.deepEqual(res.json.external_metadata, { i });
      succeeded.push(i);
    });
    if (gaveUp.length > 0) console.log(`# ${gaveUp.length} of ${N} concurrent PATCHes answered 503 (retries exhausted)`);
    assert.ok(succeeded.length >= N / 2, `most writes succeed: only ${succeeded.length} of ${N} did`);

    for (const instance of [a, b]) {
      const res = await call(instance, 'GET', `/v2/users/${id}`, key);
      assert.equal(res.status, 200, res.text);
      const match = /^f-(\d+)$/.exec(res.json.first_name as string);
      assert.ok(match, `first_name is one of the written values: ${res.json.first_name}`);
      const i = Number(match[1]);
      assert.deepEqual(
        {
          first_name: res.json.first_name,
          last_name: res.json.last_name,
          city: res.json.address.city,
          external_metadata: res.json.external_metadata,
        },
        { first_name: `f-${i}`, last_name: `l-${i}`, city: `c-${i}`, external_metadata: { i } },
        `${instance.name} shows a mixture of writes`,
      );
      assert.ok(succeeded.includes(i), `the stored state is write ${i}, which was not acknowledged with 200`);
    }

    // No lost update: every acknowledged write advanced the row's version exactly once.
    const row = await store.db
      .selectFrom('users')
      .select(['version'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    assert.equal(Number(row.version), 1 + succeeded.length, 'version = 1 + number of acknowledged PATCHes');
  });

  it('SIGTERM stops both instances with exit code 0', { timeout: STOP_TIMEOUT_MS * 2 + 5_000 }, async () => {
    const exits = await Promise.all([stopServer(a), stopServer(b)]);
    for (const [i, exit] of exits.entries()) {
      const instance = i === 0 ? a : b;
      assert.deepEqual(exit, { code: 0, signal: null }, `${instance.name} stderr: ${instance.stderr()}`);
      assert.match(instance.stdout(), /shutting down/, `${instance.name} logged its shutdown`);
    }
  });
});

suite(`scale-out: two instances starting together on an empty PostgreSQL schema${STORES.includes('postgres') ? '' : ' (skipped: PostgreSQL not reachable)'}`, () => {
  let store: TestStore;
  const started: Instance[] = [];

  after(async () => {
    for (const instance of started) {
      if (instance.child.exitCode === null && instance.child.signalCode === null) instance.child.kill('SIGKILL');
    }
    await store?.drop();
  });

  it('migrate it exactly once between them, then both serve', { timeout: SERVE_TIMEOUT_MS + STOP_TIMEOUT_MS * 2 + 10_000 }, async () => {
    store = await openStore('postgres', { migrate: false });
    const env = { ...store.env, USER_TOKEN_SECRET: SHARED_SECRET, PII_KEYS: SHARED_PII_KEYS };
    const instances = await Promise.allSettled([startServer(env, { name: 'C' }), startServer(env, { name: 'D' })]);
    for (const result of instances) if (result.status === 'fulfilled') started.push(result.value);
    for (const result of instances) if (result.status === 'rejected') throw result.reason;
    const [c, d] = started as [Instance, Instance];

    const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(store.db);
    const names = applied.rows.map((r) => r.name);
    assert.ok(names.length > 0, 'migrations were applied');
    assert.equal(new Set(names).size, names.length, 'no migration recorded twice');

    const tenant = await createApiKey(store.db, { name: 'late' });
    const created = await call(c, 'POST', '/v2/users', tenant, {});
    assert.equal(created.status, 200, created.text);
    const read = await call(d, 'GET', `/v2/users/${created.json.id}`, tenant);
    assert.equal(read.status, 200, read.text);

    const exits = await Promise.all([stopServer(c), stopServer(d)]);
    assert.deepEqual(exits, [
      { code: 0, signal: null },
      { code: 0, signal: null },
    ], `stderr C: ${c.stderr()}\nstderr D: ${d.stderr()}`);
  });
});
