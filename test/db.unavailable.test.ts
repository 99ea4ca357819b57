// A database that stops answering: every request still ends, in a 503 within the documented bound, and service resumes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { buildApp } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { openDatabase, SQLITE_BUSY_TIMEOUT_MS, type Db } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { createApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { createLogger } from '../src/logger.js';
import { resolveSecrets } from '../src/secrets.js';
import { basicAuth, openStore, STORES, TEST_DATABASE_URL, TEST_PII_KEYS, TEST_SECRET } from './helpers/app.js';
import {
  cleanUpProcesses,
  COMMAND_TIMEOUT_MS,
  exitOf,
  makeTempDir,
  SERVE_TIMEOUT_MS,
  startCli,
  startServer,
  STOP_TIMEOUT_MS,
  stopServer,
} from './helpers/process.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

/** Short bounds, so that the test waits little; the defaults are documented in the README. */
const TIMEOUTS = {
  DATABASE_STATEMENT_TIMEOUT_MS: '500',
  DATABASE_QUERY_TIMEOUT_MS: '1000',
  DATABASE_CONNECT_TIMEOUT_MS: '1000',
};
/** The documented bound on PostgreSQL: waiting for a connection, then for the query's answer. */
const PG_BOUND_MS = Number(TIMEOUTS.DATABASE_CONNECT_TIMEOUT_MS) + Number(TIMEOUTS.DATABASE_QUERY_TIMEOUT_MS);
/** Generous: the bound is a correctness property, not a timing; this only absorbs a loaded machine. */
const SLACK_MS = 3000;
const UNAVAILABLE = { detail: 'Service temporarily unavailable, try again later.' };
/** Values stored in clear: none may reach a log line. */
const PLANTED = { first_name: 'Silentia', email: 'silentia.frozen@example.org', external_id: 'ext-Glaciermoor' };

const testTarget = new URL(TEST_DATABASE_URL);
/** TEST_DATABASE_URL through `proxy`. */
function throughProxy(proxy: TcpProxy): string {
  const url = new URL(TEST_DATABASE_URL);
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  return url.toString();
}

/** Fails instead of hanging when `promise` does not settle within `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

interface Answer {
  what: string;
  status: number;
  json: unknown;
  ms: number;
}

interface Harness {
  app: FastifyInstance;
  key: IssuedKey;
  logs: string[];
  ask(what: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, headers?: Record<string, string>): Promise<Answer>;
}

async function harness(config: Config, db: Db, key: IssuedKey, limitMs: number): Promise<Harness> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const app = await buildApp(config, { db, secrets: resolveSecrets(config), logger: createLogger('warn', sink) });
  await app.ready();
  return {
    app,
    key,
    logs,
    async ask(what, method, url, payload, headers = {}) {
      const started = Date.now();
      const res = await within(
        limitMs,
        what,
        app.inject({ method, url, payload, headers: { authorization: basicAuth(key), ...headers } }),
      );
      return { what, status: res.statusCode, json: res.body === '' ? undefined : res.json(), ms: Date.now() - started };
    },
  };
}

const configFor = (env: NodeJS.ProcessEnv) =>
  loadConfig({
    USER_TOKEN_SECRET: TEST_SECRET,
    PII_KEYS: TEST_PII_KEYS,
    RATE_LIMIT_MAX: '0',
    API_KEY_CACHE_MS: '0',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    ...env,
  });

/** The error lines the 503s logged: one each, naming the cause, nothing personal. */
function assertUnavailableLogged(logs: string[], answered: number): void {
  const lines = logs.map((line) => JSON.parse(line) as { level: number; msg: string; reason?: string });
  const unavailable = lines.filter((line) => line.msg === 'the database did not answer');
  assert.equal(unavailable.length, answered, `one line per 503:\n${logs.join('')}`);
  for (const line of unavailable) {
    assert.equal(line.level, 50);
    assert.equal(typeof line.reason, 'string');
  }
  for (const value of Object.values(PLANTED)) {
    assert.equal(logs.join('').includes(value), false, `${value} was logged`);
  }
  assert.equal(lines.filter((line) => line.msg === 'request failed').length, 0, `a 500 was logged:\n${logs.join('')}`);
}

after(cleanUpProcesses);

for (const store of STORES) {
  describe(`a database that stops answering (${store})`, () => {
    if (store === 'postgres') {
      it(
        'while the network path is silent every request answers 503 within connect + query timeout; once it speaks again the next request is served',
        { timeout: 60_000 },
        async () => {
          const direct = await openStore('postgres');
          const proxy = await startTcpProxy({ host: testTarget.hostname, port: Number(testTarget.port || 5432) });
          const config = configFor({
            ...direct.env,
            DATABASE_URL: throughProxy(proxy),
            DATABASE_POOL_SIZE: '3',
            ...TIMEOUTS,
          });
          const db = openDatabase(config.database);
          const api = await harness(config, db, await createApiKey(direct.db, { name: 'silent' }), PG_BOUND_MS * 5);
          try {
            const created = await api.ask('create', 'POST', '/v2/users', PLANTED);
            assert.equal(created.status, 200, JSON.stringify(created.json));
            const id = (created.json as { id: string }).id;
            assert.equal((await api.ask('get', 'GET', `/v2/users/${id}`)).status, 200);

            proxy.pause();
            // More requests than connections: some wait for the pool, some hold a connection that never answers.
            const answers = await Promise.all([
              api.ask('get', 'GET', `/v2/users/${id}`),
              api.ask('list', 'GET', '/v2/users?external_id=ext-Glaciermoor'),
              api.ask('create', 'POST', '/v2/users', PLANTED),
              api.ask('keyed create (a transaction)', 'POST', '/v2/users', PLANTED, { 'idempotency-key': 'silent-1' }),
              api.ask('patch', 'PATCH', `/v2/users/${id}`, { first_name: 'Silentia2' }),
              api.ask('delete', 'DELETE', `/v2/users/${id}`),
              api.ask('token', 'POST', '/v2/user-tokens', { user: id }),
              api.ask('get again', 'GET', `/v2/users/${id}`),
            ]);
            for (const answer of answers) {
              assert.equal(answer.status, 503, `${answer.what}: ${answer.status} ${JSON.stringify(answer.json)}`);
              assert.deepEqual(answer.json, UNAVAILABLE, answer.what);
              assert.ok(answer.ms < PG_BOUND_MS + SLACK_MS, `${answer.what} answered after ${answer.ms} ms`);
            }
            const ready = await within(PG_BOUND_MS * 5, 'readyz', api.app.inject({ method: 'GET', url: '/readyz' }));
            assert.equal(ready.statusCode, 503, ready.body);
            assert.deepEqual(ready.json(), { detail: 'Database unreachable.' });
            assertUnavailableLogged(api.logs, answers.length);

            // A connection whose query went unanswered is discarded, never handed out again: the next request opens a new one.
            const accepted = proxy.accepted;
            assert.equal((await api.ask('after the timeouts', 'GET', `/v2/users/${id}`)).status, 503);
            assert.ok(proxy.accepted > accepted, 'a connection that timed out was reused');

            proxy.resume();
            const served = await api.ask('after resuming', 'GET', `/v2/users/${id}`);
            assert.equal(served.status, 200, JSON.stringify(served.json));
            assert.equal((served.json as { first_name: string }).first_name, PLANTED.first_name, 'nothing was written while silent');
            assert.equal((await api.ask('create after resuming', 'POST', '/v2/users', {})).status, 200);
            assert.equal((await api.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
          } finally {
            proxy.resume();
            await api.app.close();
            await db.destroy();
            await proxy.close();
            await direct.drop();
          }
        },
      );
    } else {
      it(
        'while another process holds the write lock, writes answer 503 within the busy timeout and reads are served; then writes work again',
        { timeout: 60_000 },
        async () => {
          const path = join(makeTempDir('silent'), 'users.db');
          const config = configFor({ DATABASE_URL: path });
          const db = openDatabase(config.database);
          await migrateToLatest(db);
          const api = await harness(config, db, await createApiKey(db, { name: 'silent' }), SQLITE_BUSY_TIMEOUT_MS * 4);
          const other = new SQLite(path);
          try {
            const created = await api.ask('create', 'POST', '/v2/users', PLANTED);
            assert.equal(created.status, 200);
            const id = (created.json as { id: string }).id;

            other.exec('BEGIN IMMEDIATE');
            const answers = await Promise.all([api.ask('create', 'POST', '/v2/users', PLANTED), api.ask('delete', 'DELETE', `/v2/users/${id}`)]);
            for (const answer of answers) {
              assert.equal(answer.status, 503, `${answer.what}: ${answer.status} ${JSON.stringify(answer.json)}`);
              assert.deepEqual(answer.json, UNAVAILABLE, answer.what);
              // Each group commit waits out the busy timeout once; two requests may fall in two groups.
              assert.ok(answer.ms < SQLITE_BUSY_TIMEOUT_MS * 2 + SLACK_MS, `${answer.what} answered after ${answer.ms} ms`);
            }
            assert.equal((await api.ask('get', 'GET', `/v2/users/${id}`)).status, 200, 'a read does not wait for the lock');
            assert.equal((await api.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
            assertUnavailableLogged(api.logs, answers.length);

            other.exec('ROLLBACK');
            assert.equal((await api.ask('create after', 'POST', '/v2/users', {})).status, 200);
            assert.equal((await api.ask('delete after', 'DELETE', `/v2/users/${id}`)).status, 204);
          } finally {
            if (other.inTransaction) other.exec('ROLLBACK');
            other.close();
            await api.app.close();
            await db.destroy();
          }
        },
      );
    }
  });
}

if (STORES.includes('postgres')) {
  describe('the CLI and the server process with a silent PostgreSQL', () => {
    const schemas: string[] = [];
    after(async () => {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      for (const schema of schemas) await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    });

    /** A migrated schema with one key, reached through a fresh proxy. */
    async function silentStore() {
      const direct = await openStore('postgres');
      const key = await createApiKey(direct.db, { name: 'silent' });
      await direct.db.destroy();
      schemas.push(direct.env.DATABASE_SCHEMA ?? '');
      const proxy = await startTcpProxy({ host: testTarget.hostname, port: Number(testTarget.port || 5432) });
      const env = { DATABASE_URL: throughProxy(proxy), DATABASE_SCHEMA: direct.env.DATABASE_SCHEMA, USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS, ...TIMEOUTS };
      return { key, proxy, env };
    }

    /**
     * `users-api import` with the network path going silent once it has looked up its client, i.e. just before it
     * reads its input; then `input` is fed. Resolves with its exit, result and how long after the silence it took.
     */
    async function importThroughSilence(input: string) {
      const { key, proxy, env } = await silentStore();
      const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await admin.connect();
      try {
        const importing = startCli(['import', '--client', key.client_id], env);
        const deadline = Date.now() + COMMAND_TIMEOUT_MS;
        while (!(await idleAfterClientLookup(admin, proxy))) {
          assert.ok(importing.child.exitCode === null && Date.now() < deadline, `import never looked up its client\nstderr: ${importing.stderr()}`);
          await sleep(50);
        }
        proxy.pause();
        const silentSince = Date.now();
        importing.child.stdin!.end(input);
        const exit = await exitOf(importing, COMMAND_TIMEOUT_MS);
        return { ...exit, stdout: importing.stdout(), stderr: importing.stderr(), took: Date.now() - silentSince };
      } finally {
        proxy.resume();
        await admin.end();
        await proxy.close();
      }
    }

    it('import: the network goes silent mid-command; it fails in one line within the bound instead of hanging', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
      const result = await importThroughSilence(`${JSON.stringify(PLANTED)}\n`);
      assert.notEqual(result.code, 0, `stdout: ${result.stdout}`);
      assert.equal(result.signal, null);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0] ?? '', /^users-api: .*did not answer/);
      assert.ok(result.took < PG_BOUND_MS + SLACK_MS * 2, `exited ${result.took} ms after the network went silent`);
    });

    it('a command that is done exits even though the silent server never acknowledges the goodbye of its connection', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
      // Nothing to import: no query after the silence, only closing the pool, whose idle connection waits for the server.
      const result = await importThroughSilence('');
      assert.deepEqual({ code: result.code, signal: result.signal }, { code: 0, signal: null }, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), { read: 0, imported: 0, rejected: 0 });
      assert.ok(result.took < Number(TIMEOUTS.DATABASE_CONNECT_TIMEOUT_MS) + SLACK_MS * 2, `exited ${result.took} ms after the network went silent`);
    });

    it('SIGTERM while the database is silent: the server still exits 0, well before SHUTDOWN_TIMEOUT_MS', { timeout: SERVE_TIMEOUT_MS + STOP_TIMEOUT_MS * 2 }, async () => {
      const { key, proxy, env } = await silentStore();
      // A long deadline: exiting 0 well before it proves no query or connection was waited out.
      const server = await startServer({ ...env, SHUTDOWN_TIMEOUT_MS: '30000' });
      try {
        const served = await fetch(`${server.base}/v2/users?limit=1`, { headers: { authorization: basicAuth(key) } });
        assert.equal(served.status, 200);
        // Shutting down removes the instance's heartbeat row: a query that must not be waited on forever.
        proxy.pause();
        const started = Date.now();
        server.child.kill('SIGTERM');
        const exit = await exitOf(server, STOP_TIMEOUT_MS * 2);
        assert.deepEqual(exit, { code: 0, signal: null }, `stdout: ${server.stdout().slice(-2000)}\nstderr: ${server.stderr()}`);
        assert.ok(Date.now() - started < PG_BOUND_MS * 2 + SLACK_MS * 2, `shutdown took ${Date.now() - started} ms`);
      } finally {
        if (server.child.exitCode === null) await stopServer(server).catch(() => undefined);
        proxy.resume();
        await proxy.close();
      }
    });
  });
}

/** Whether a connection through `proxy` sits idle after looking up a client (what `import` does before reading input). */
async function idleAfterClientLookup(admin: pg.Client, proxy: TcpProxy): Promise<boolean> {
  const result = await admin.query<{ n: string }>(
    `select count(*) as n from pg_stat_activity where client_port = any($1) and state = 'idle' and query like '%from "clients"%'`,
    [proxy.targetPorts()],
  );
  return Number(result.rows[0]?.n) > 0;
}
