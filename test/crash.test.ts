// Crash: a real server process gets a stream of creates from several keep-alive clients, is killed with SIGKILL
// mid-stream, and restarted on the same store. Every create that was answered 200 must be there and read back exactly
// as sent; creates in flight at the kill may or may not exist; nothing that was never sent may exist. On every store.
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { after, describe, it } from 'node:test';
import { openDatabase, type Db } from '../src/db/database.js';
import { createApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { basicAuth, countUsers, openStore, STORES, TEST_SECRET, type Store } from './helpers/app.js';
import { cleanUpProcesses, exitOf, SERVE_TIMEOUT_MS, sqliteStoreWithKey, startServer, STOP_TIMEOUT_MS, type Exit } from './helpers/process.js';

const REQUEST_TIMEOUT_MS = 15_000;
/** Concurrent clients, each on its own keep-alive connection, each with one create in flight at a time. */
const CLIENTS = 12;
/** The server is killed when this many creates have been acknowledged. */
const KILL_AFTER = 300;
/** Field-encryption keys for PostgreSQL (SQLite generates its own beside the database, as in production). */
const PII_KEYS = `crash1:${Buffer.alloc(32, 9).toString('base64')}`;

const cleanups: Array<() => Promise<void>> = [];

interface Answer {
  status: number;
  body: string;
}

/**
 * One HTTP request over `agent` (keep-alive); rejects on a connection error or after REQUEST_TIMEOUT_MS.
 * `onSent` runs once the whole request has been handed to the kernel.
 */
function send(
  agent: Agent,
  base: string,
  key: IssuedKey,
  method: string,
  path: string,
  body?: unknown,
  onSent?: () => void,
  extraHeaders: Record<string, string> = {},
): Promise<Answer & { replayed: boolean }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpRequest(
      new URL(path, base),
      {
        method,
        agent,
        headers: {
          authorization: basicAuth(key),
          accept: 'application/json',
          ...extraHeaders,
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, replayed: res.headers['idempotent-replayed'] === 'true' }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    if (onSent) req.on('finish', onSent);
    req.end(payload);
  });
}

/** What a client sends: every field set, each with a marker unique to this create. */
function createBody(marker: string, client: number, n: number) {
  return {
    external_id: marker,
    first_name: `First ${marker}`,
    last_name: `Last-${n}`,
    email: `${marker}@example.com`,
    phone_number: '+12125555555',
    ssn: `${String(100 + client).padStart(3, '0')}-${String(10 + (n % 90)).padStart(2, '0')}-${String(1000 + n).slice(-4)}`,
    address: { city: 'New York', line1: `${n} Main St`, line2: `Apt ${client}`, state: 'NY', country: 'US', postal_code: '10001' },
    birth_date: { year: 1950 + (n % 50), month: 1 + (n % 12), day: 1 + (n % 28) },
    external_metadata: { marker, client, n, nested: { list: [n, String(n), null, true], unicode: 'Zoë ✓' } },
  };
}
type CreateBody = ReturnType<typeof createBody>;

/** The user object a create body must read back as (id and created_at aside). */
function expectedUser(id: string, body: CreateBody) {
  return {
    id,
    items_connected: [],
    employers_connected: [],
    external_metadata: body.external_metadata,
    external_id: body.external_id,
    first_name: body.first_name,
    last_name: body.last_name,
    email: body.email,
    phone_number: body.phone_number,
    ssn: body.ssn,
    address: body.address,
    birth_date: body.birth_date,
  };
}

function withoutCreatedAt(user: Record<string, unknown>): Record<string, unknown> {
  const { created_at: createdAt, ...rest } = user;
  assert.match(String(createdAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  return rest;
}

/** Runs `task` over `items` with `width` at a time. */
async function eachLimited<T>(items: T[], width: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await task(item);
      }
    }),
  );
}

interface CrashStore {
  key: IssuedKey;
  env: NodeJS.ProcessEnv;
  /** A connection to the store for direct counts (opened when needed on SQLite, so the server alone holds the file before). */
  withDb<T>(use: (db: Db) => Promise<T>): Promise<T>;
}

async function prepareStore(store: Store): Promise<CrashStore> {
  if (store === 'sqlite') {
    const { path, key } = await sqliteStoreWithKey('crash');
    const withDb = async <T>(use: (db: Db) => Promise<T>) => {
      const db = openDatabase({ kind: 'sqlite', path });
      try {
        return await use(db);
      } finally {
        await db.destroy();
      }
    };
    return { key, env: { DATABASE_URL: path }, withDb };
  }
  const opened = await openStore('postgres');
  cleanups.push(() => opened.drop());
  const key = await createApiKey(opened.db, { name: 'crash' });
  return {
    key,
    env: { ...opened.env, USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS },
    withDb: (use) => use(opened.db),
  };
}

after(async () => {
  cleanUpProcesses();
  for (const cleanup of cleanups) await cleanup();
});

for (const store of STORES) {
  describe(`crash: SIGKILL mid-stream loses no acknowledged create (${store})`, () => {
    it(
      `${CLIENTS} keep-alive clients stream creates; SIGKILL after ${KILL_AFTER} acknowledged; after a restart every acknowledged create reads back exactly`,
      { timeout: SERVE_TIMEOUT_MS * 2 + STOP_TIMEOUT_MS + 60_000 },
      async () => {
        const { key, env, withDb } = await prepareStore(store);
        // Budgets and load shedding would answer 429/503 under this stream; they have their own tests.
        const serverEnv = { ...env, RATE_LIMIT_MAX: '0', MAX_EVENT_LOOP_DELAY_MS: '0' };
        const server = await startServer(serverEnv);

        const sent = new Map<string, CreateBody>();
        const acknowledged = new Map<string, string>(); // marker -> id
        const unanswered = new Set<string>();
        const problems: string[] = [];
        let killed = false;
        let killRequested = false;
        let killedAt = 0;
        const kill = () => {
          if (killed) return;
          killed = true;
          killedAt = acknowledged.size;
          server.child.kill('SIGKILL');
        };
        const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });

        const client = async (c: number) => {
          for (let n = 0; !killed; n++) {
            const marker = `crash-${store}-${c}-${n}`;
            const body = createBody(marker, c, n);
            sent.set(marker, body);
            // The client that saw the KILL_AFTER-th acknowledgement kills the server as soon as its next create is
            // on the wire: at least that one (and whatever the other clients have out) is in flight at the kill.
            const killer = killRequested && !killed;
            let answer: Answer;
            try {
              answer = await send(agent, server.base, key, 'POST', '/v2/users', body, killer ? kill : undefined);
            } catch (error) {
              if (killed) unanswered.add(marker);
              else problems.push(`${marker}: ${(error as Error).message} before the kill`);
              return;
            }
            if (answer.status !== 200) {
              problems.push(`${marker}: ${answer.status} ${answer.body.slice(0, 200)}`);
              return;
            }
            const created = JSON.parse(answer.body) as { id: string; user_token: string };
            assert.match(created.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
            // Acknowledged: even if this answer was read after the kill, the server sent it, so it must have committed.
            acknowledged.set(marker, created.id);
            if (!killRequested && acknowledged.size >= KILL_AFTER) killRequested = true;
          }
        };
        const streaming = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
        let exit: Exit;
        try {
          await streaming;
          exit = await exitOf(server);
        } finally {
          agent.destroy();
          if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
        }
        assert.deepEqual(problems, [], 'every create before the kill was answered 200');
        assert.ok(killed, 'the server was killed mid-stream');
        assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
        assert.ok(acknowledged.size >= KILL_AFTER);
        // Sent = acknowledged + unanswered: every create had exactly one fate.
        assert.equal(sent.size, acknowledged.size + unanswered.size);
        assert.ok(unanswered.size > 0, 'requests were in flight when the server was killed');

        // Restart on the same store.
        const again = await startServer(serverEnv);
        const readAgent = new Agent({ keepAlive: true, maxSockets: 8 });
        try {
          // Every acknowledged create is there, readable by id, exactly as sent.
          const missing: string[] = [];
          await eachLimited([...acknowledged], 8, async ([marker, id]) => {
            const res = await send(readAgent, again.base, key, 'GET', `/v2/users/${id}`);
            if (res.status !== 200) {
              missing.push(`${marker} ${id}: ${res.status} ${res.body.slice(0, 200)}`);
              return;
            }
            const body = sent.get(marker) as CreateBody;
            assert.deepEqual(withoutCreatedAt(JSON.parse(res.body)), expectedUser(id, body), `${marker} did not read back as sent`);
          });
          assert.deepEqual(missing, [], `acknowledged creates lost by the crash (${missing.length} of ${acknowledged.size})`);

          // Every user there was sent, once, and reads back as sent: nothing invented, nothing duplicated or torn.
          const listed = new Map<string, string>(); // marker -> id
          let path: string | null = '/v2/users?limit=200';
          while (path) {
            const page = await send(readAgent, again.base, key, 'GET', path);
            assert.equal(page.status, 200, page.body);
            const { next, results } = JSON.parse(page.body) as { next: string | null; results: Array<Record<string, unknown>> };
            for (const user of results) {
              const marker = String(user.external_id);
              const body = sent.get(marker);
              assert.ok(body, `a user that was never sent exists: ${JSON.stringify(user).slice(0, 300)}`);
              assert.equal(listed.has(marker), false, `${marker} exists twice`);
              listed.set(marker, String(user.id));
              assert.deepEqual(withoutCreatedAt(user), expectedUser(String(user.id), body), `${marker} is not what was sent`);
              const acknowledgedId = acknowledged.get(marker);
              if (acknowledgedId !== undefined) assert.equal(user.id, acknowledgedId, `${marker} has another id than acknowledged`);
              else assert.ok(unanswered.has(marker), `${marker} exists but was neither acknowledged nor in flight`);
            }
            path = next === null ? null : new URL(next).pathname + new URL(next).search;
          }
          const inFlightStored = [...unanswered].filter((marker) => listed.has(marker)).length;
          assert.equal(listed.size, acknowledged.size + inFlightStored);
          // And the store holds no row beyond those (under any tenant).
          assert.equal(await withDb(countUsers), listed.size, 'rows in the store beyond the listed users');

          console.log(
            `# crash (${store}): killed after ${killedAt} acknowledged; acknowledged ${acknowledged.size} ` +
              `(all ${acknowledged.size} found), in flight without an answer ${unanswered.size} ` +
              `(${inFlightStored} stored, ${unanswered.size - inFlightStored} not), users after restart ${listed.size}`,
          );
        } finally {
          readAgent.destroy();
          again.child.kill('SIGTERM');
          const stopped = await exitOf(again);
          assert.deepEqual(stopped, { code: 0, signal: null }, `stderr: ${again.stderr()}`);
        }
      },
    );
  });
}

/** Keyed creates killed mid-stream: after a restart, a retry of every key answers 200, and each key made one user. */
const KEYED_KILL_AFTER = 150;

for (const store of STORES) {
  describe(`crash: SIGKILL under keyed creates leaves no key stuck and no orphan user (${store})`, () => {
    it(
      `${CLIENTS} clients stream creates with Idempotency-Key; SIGKILL after ${KEYED_KILL_AFTER}; after a restart every key's retry is 200 and each key made exactly one user`,
      { timeout: SERVE_TIMEOUT_MS * 2 + STOP_TIMEOUT_MS + 60_000 },
      async () => {
        const { key, env, withDb } = await prepareStore(store);
        const serverEnv = { ...env, RATE_LIMIT_MAX: '0', MAX_EVENT_LOOP_DELAY_MS: '0' };
        const server = await startServer(serverEnv);
        const sent = new Map<string, CreateBody>(); // idempotency key -> body (its external_id is the key)
        const acknowledged = new Map<string, string>(); // idempotency key -> id
        let killed = false;
        const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
        const client = async (c: number) => {
          for (let n = 0; !killed; n++) {
            const idempotencyKey = `keyed-${store}-${c}-${n}`;
            const body = createBody(idempotencyKey, c, n);
            sent.set(idempotencyKey, body);
            const onSent = acknowledged.size >= KEYED_KILL_AFTER && !killed ? () => ((killed = true), server.child.kill('SIGKILL')) : undefined;
            try {
              const answer = await send(agent, server.base, key, 'POST', '/v2/users', body, onSent, { 'idempotency-key': idempotencyKey });
              assert.equal(answer.status, 200, answer.body);
              acknowledged.set(idempotencyKey, (JSON.parse(answer.body) as { id: string }).id);
            } catch (error) {
              if (!killed) throw error;
              return;
            }
          }
        };
        try {
          await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
          assert.deepEqual(await exitOf(server), { code: null, signal: 'SIGKILL' });
        } finally {
          agent.destroy();
          if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
        }
        assert.ok(sent.size > acknowledged.size, 'creates were in flight at the kill');

        const again = await startServer(serverEnv);
        const retryAgent = new Agent({ keepAlive: true, maxSockets: 8 });
        try {
          const madeBy = new Map<string, string>(); // idempotency key -> id after the retry
          const problems: string[] = [];
          await eachLimited([...sent], 8, async ([idempotencyKey, body]) => {
            const answer = await send(retryAgent, again.base, key, 'POST', '/v2/users', body, undefined, { 'idempotency-key': idempotencyKey });
            if (answer.status !== 200) {
              problems.push(`${idempotencyKey}: ${answer.status} ${answer.body.slice(0, 200)}`);
              return;
            }
            const { id } = JSON.parse(answer.body) as { id: string };
            const first = acknowledged.get(idempotencyKey);
            if (first !== undefined) {
              if (id !== first || !answer.replayed) problems.push(`${idempotencyKey}: acknowledged ${first}, retry answered ${id} (replayed ${answer.replayed})`);
            }
            madeBy.set(idempotencyKey, id);
          });
          assert.deepEqual(problems, [], 'every retry after the restart answers 200, acknowledged keys with their first answer');

          // Exactly one user per key: the store holds one row per key sent, and it is the one the retry named.
          const stored = await withDb((db) => db.selectFrom('users').select(['id', 'external_id']).execute());
          assert.equal(stored.length, sent.size, 'users in the store against keys sent');
          for (const row of stored) {
            assert.equal(madeBy.get(String(row.external_id)), row.id, `${row.external_id} holds a user its retry did not name`);
          }
          console.log(`# keyed crash (${store}): ${sent.size} keys sent, ${acknowledged.size} acknowledged before the kill, ${stored.length} users after the retries`);
        } finally {
          retryAgent.destroy();
          again.child.kill('SIGTERM');
          assert.deepEqual(await exitOf(again), { code: 0, signal: null }, `stderr: ${again.stderr()}`);
        }
      },
    );
  });
}
