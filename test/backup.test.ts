// users-api backup and restore, run as an operator runs them: a backup taken while a real server takes a stream of
// creates, restored into a fresh directory and served from there; refusals that leave the store as it was.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import type { IssuedKey } from '../src/keys/keys.service.js';
import { newPiiKeyEntry } from '../src/pii/pii.cipher.js';
import { basicAuth } from './helpers/app.js';
import {
  assertOneLineError,
  cleanUpProcesses,
  cli,
  COMMAND_TIMEOUT_MS,
  makeTempDir,
  sqliteStoreWithKey,
  startServer,
  stopServer,
  type ServerProcess,
} from './helpers/process.js';

after(cleanUpProcesses);

/** Servers get no secrets from the environment: they keep them in files beside the store, which a backup must carry. */
const SERVER_ENV = { RATE_LIMIT_MAX: '0', MAX_EVENT_LOOP_DELAY_MS: '0' };
const WRITERS = 6;
/** Bounds on the write load, whatever happens to the backup. */
const MAX_CREATES = 20_000;
const MAX_LOAD_MS = 60_000;

interface Acknowledged {
  id: string;
  userToken: string;
  body: ReturnType<typeof createBody>;
  /** performance.now() when the 200 arrived. */
  at: number;
}

function createBody(writer: number, n: number) {
  const marker = `w${writer}-${n}`;
  return {
    external_id: marker,
    first_name: `First ${marker}`,
    last_name: `Last ${n}`,
    email: `${marker}@example.com`,
    ssn: `${String(100 + writer)}-${String(10 + (n % 90))}-${String(1000 + (n % 9000))}`,
    birth_date: { year: 1950 + (n % 50), month: 1 + (n % 12), day: 1 + (n % 28) },
    address: { city: 'New York', line1: `${n} Main St`, state: 'NY', country: 'US', postal_code: '10001' },
    external_metadata: { writer, n },
  };
}

async function api(server: ServerProcess, key: IssuedKey, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.base}${path}`, {
    method,
    headers: { authorization: basicAuth(key), accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

/** Every file in `dir` with its SHA-256, to show that a refused restore changed nothing. */
function snapshot(dir: string): Record<string, string> {
  if (!existsSync(dir)) return {};
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((name) => [name, createHash('sha256').update(readFileSync(join(dir, name))).digest('hex')]),
  );
}

const mode = (path: string) => statSync(path).mode & 0o777;

describe('users-api backup and restore (sqlite)', { timeout: 600_000 }, () => {
  let key: IssuedKey;
  let source: { dir: string; path: string };
  let server: ServerProcess;
  let backup: string;
  const acknowledged: Acknowledged[] = [];
  let backupStarted = 0;
  let backupEnded = 0;

  before(async () => {
    const store = await sqliteStoreWithKey('backup-source');
    key = store.key;
    source = store;
    server = await startServer({ ...SERVER_ENV, DATABASE_URL: store.path });
    // In a directory that is not there yet: backup creates it, owner-only.
    backup = join(makeTempDir('backups'), 'offsite', 'nightly');
  });

  after(async () => {
    await stopServer(server);
  });

  it('a backup taken under a stream of creates restores every user acknowledged before it began', async () => {
    let stop = false;
    const loadEnds = performance.now() + MAX_LOAD_MS;
    const writer = async (w: number) => {
      for (let n = 0; !stop && acknowledged.length < MAX_CREATES && performance.now() < loadEnds; n++) {
        const body = createBody(w, n);
        const res = await api(server, key, 'POST', '/v2/users', body);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        acknowledged.push({ id: res.json!.id as string, userToken: res.json!.user_token as string, body, at: performance.now() });
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    const stopped = Promise.all(writers);
    stopped.catch(() => (stop = true));
    try {
      while (acknowledged.length < 100) await new Promise((resolve) => setTimeout(resolve, 20));
      backupStarted = performance.now();
      const result = await cli(['backup', backup], { DATABASE_URL: source.path });
      backupEnded = performance.now();
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, /^backed up .*users\.db into .*nightly: users\.db, user-token\.secret, pii\.keys\n$/);
      // A few more after the backup ended: none of them may be in it.
      const count = acknowledged.length;
      while (acknowledged.length < count + 50) await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      stop = true;
      await stopped;
    }
    const during = acknowledged.filter((a) => a.at > backupStarted && a.at < backupEnded);
    assert.ok(during.length >= 10, `only ${during.length} creates were acknowledged while the backup ran: no write load`);

    assert.equal(mode(backup), 0o700);
    assert.equal(mode(join(backup, '..')), 0o700);
    assert.deepEqual(readdirSync(backup).sort(), ['pii.keys', 'user-token.secret', 'users.db']);
    for (const name of readdirSync(backup)) assert.equal(mode(join(backup, name)), 0o600, `${name} is not owner-only`);
    assert.deepEqual(
      readdirSync(join(backup, '..')).filter((name) => name !== 'nightly'),
      [],
      'the backup left its temporary directory behind',
    );

    const fresh = join(makeTempDir('restored'), 'data', 'users.db');
    const restored = await cli(['restore', backup], { DATABASE_URL: fresh });
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /^restored .*nightly into .*users\.db: users\.db, user-token\.secret, pii\.keys\n$/);
    assert.equal(mode(join(fresh, '..')), 0o700);
    assert.deepEqual(readdirSync(join(fresh, '..')).sort(), ['pii.keys', 'user-token.secret', 'users.db']);
    for (const name of readdirSync(join(fresh, '..'))) assert.equal(mode(join(fresh, '..', name)), 0o600, `restored ${name} is not owner-only`);

    const copy = await startServer({ ...SERVER_ENV, DATABASE_URL: fresh }, { name: 'restored' });
    try {
      const before = acknowledged.filter((a) => a.at < backupStarted);
      assert.ok(before.length >= 100);
      for (const user of before) {
        const res = await api(copy, key, 'GET', `/v2/users/${user.id}`);
        assert.equal(res.status, 200, `user ${user.body.external_id}, acknowledged before the backup began, is missing`);
        const fields = ['external_id', 'first_name', 'last_name', 'email', 'ssn', 'birth_date', 'external_metadata'] as const;
        const pick = (from: Record<string, unknown>) => Object.fromEntries(fields.map((field) => [field, from[field]]));
        assert.deepEqual(pick(res.json!), pick(user.body));
        assert.deepEqual(res.json!.address, { line2: null, ...user.body.address });
        // The restored server takes the source's user tokens: user-token.secret came along too.
        const introspected = await api(copy, key, 'POST', '/v2/user-tokens/introspect', { user_token: user.userToken });
        assert.equal(introspected.json!.active, true);
      }
      // A snapshot, not a file copied while being written: nothing acknowledged after the backup ended is in it.
      for (const user of acknowledged.filter((a) => a.at > backupEnded)) {
        assert.equal((await api(copy, key, 'GET', `/v2/users/${user.id}`)).status, 404, `user ${user.body.external_id} came after the backup`);
      }
    } finally {
      await stopServer(copy);
    }
  });

  it('restore refuses to replace a store without --force, and with it while a server has it open, changing nothing', async () => {
    const dir = makeTempDir('replace');
    const path = join(dir, 'users.db');
    assert.equal((await cli(['restore', backup], { DATABASE_URL: path })).code, 0);
    const running = await startServer({ ...SERVER_ENV, DATABASE_URL: path }, { name: 'replaced' });
    const later = await api(running, key, 'POST', '/v2/users', { external_id: 'after-the-restore' });
    assert.equal(later.status, 200);

    const inUse = await cli(['restore', '--force', backup], { DATABASE_URL: path });
    assertOneLineError(inUse, /is in use .*stop it/);
    assert.equal(inUse.code, 2);
    assert.equal((await api(running, key, 'GET', `/v2/users/${later.json!.id}`)).status, 200, 'the live store was replaced');
    assert.equal((await stopServer(running)).code, 0);

    const before = snapshot(dir);
    const refused = await cli(['restore', backup], { DATABASE_URL: path });
    assertOneLineError(refused, /a store is there already .*users\.db.*--force/);
    assert.equal(refused.code, 2);
    assert.deepEqual(snapshot(dir), before, 'a refused restore changed the store or left files behind');

    const forced = await cli(['restore', '--force', backup], { DATABASE_URL: path });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /replacing the store there/);
    assert.deepEqual(readdirSync(dir).sort(), ['pii.keys', 'user-token.secret', 'users.db']);
    const again = await startServer({ ...SERVER_ENV, DATABASE_URL: path }, { name: 'forced' });
    try {
      assert.equal((await api(again, key, 'GET', `/v2/users/${later.json!.id}`)).status, 404, 'the forced restore kept the old store');
      assert.equal((await api(again, key, 'GET', `/v2/users/${acknowledged[0]!.id}`)).status, 200);
    } finally {
      await stopServer(again);
    }
  });

  it('restore verifies the backup first: damaged, not a store, or without the keys that read it is refused', { timeout: COMMAND_TIMEOUT_MS * 8 }, async () => {
    const broken = (name: string, damage: (dir: string) => void) => {
      const dir = join(makeTempDir(`broken-${name}`), 'backup');
      cpSync(backup, dir, { recursive: true });
      damage(dir);
      return dir;
    };
    const cases: Array<[string, RegExp]> = [
      [
        broken('pages', (dir) => {
          // Garbage over pages in the middle of the file: its header still says SQLite.
          const file = join(dir, 'users.db');
          const fd = openSync(file, 'r+');
          writeSync(fd, Buffer.alloc(4096 * 4, 0x5a), 0, 4096 * 4, Math.floor(statSync(file).size / 2 / 4096) * 4096);
          closeSync(fd);
        }),
        /is damaged|cannot be read/,
      ],
      [
        broken('foreign', (dir) => {
          rmSync(join(dir, 'users.db'));
          const other = new SQLite(join(dir, 'users.db'));
          other.exec('create table notes (text)');
          other.close();
        }),
        /is not a users-api store: it has no migrations table/,
      ],
      [broken('no-keys', (dir) => rmSync(join(dir, 'pii.keys'))), /personal data encrypted .*no pii\.keys/],
      [broken('other-keys', (dir) => writeFileSync(join(dir, 'pii.keys'), newPiiKeyEntry(), { mode: 0o600 })), /PII keys .* cannot read the personal data/],
      [join(backup, '..', 'missing'), /is not a backup made by users-api backup/],
    ];
    for (const [dir, message] of cases) {
      const target = makeTempDir('verify');
      const result = await cli(['restore', dir], { DATABASE_URL: join(target, 'data', 'users.db') });
      assertOneLineError(result, message);
      assert.equal(result.code, 2);
      assert.deepEqual(snapshot(join(target, 'data')), {}, `a refused restore of ${dir} left files behind`);
    }
  });

  it('restore takes a backup whose database is in WAL mode (a data directory copied by hand), leaving no -wal or -shm', async () => {
    const copied = join(makeTempDir('wal-mode'), 'backup');
    cpSync(backup, copied, { recursive: true });
    const wal = new SQLite(join(copied, 'users.db'));
    assert.equal(wal.pragma('journal_mode = WAL', { simple: true }), 'wal');
    wal.close();
    const target = join(makeTempDir('from-wal'), 'users.db');
    const result = await cli(['restore', copied], { DATABASE_URL: target });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(readdirSync(join(target, '..')).sort(), ['pii.keys', 'user-token.secret', 'users.db']);
  });

  it('backup refuses a target that exists, and a store that is not there, leaving both as they were', async () => {
    const before = snapshot(backup);
    const exists = await cli(['backup', backup], { DATABASE_URL: source.path });
    assertOneLineError(exists, /nightly exists: a backup never replaces another/);
    assert.equal(exists.code, 2);
    assert.deepEqual(snapshot(backup), before);

    const empty = makeTempDir('no-store');
    const none = await cli(['backup', join(empty, 'b')], { DATABASE_URL: join(empty, 'users.db') });
    assertOneLineError(none, /there is no store at .*users\.db to back up/);
    assert.deepEqual(readdirSync(empty), []);
  });
});

describe('users-api backup and restore on PostgreSQL', () => {
  it('say they are for the embedded store and point to pg_dump / pg_restore and the secrets to keep', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
    const dir = makeTempDir('pg-backup');
    // Never reached: the refusal comes before any connection.
    const env = { DATABASE_URL: 'postgres://users@127.0.0.1:1/users' };
    for (const [args, tool] of [
      [['backup', join(dir, 'b')], 'pg_dump'],
      [['restore', dir], 'pg_restore'],
    ] as const) {
      const result = await cli([...args], env);
      assertOneLineError(result, new RegExp(`is for the embedded SQLite store.*DATABASE_URL is PostgreSQL: use ${tool}.*PII_KEYS and USER_TOKEN_SECRET`));
      assert.equal(result.code, 2);
    }
    assert.deepEqual(readdirSync(dir), []);
  });

  it('--help of both explains the layout, the refusals and PostgreSQL', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
    const backupHelp = await cli(['backup', '--help'], {});
    assert.equal(backupHelp.code, 0);
    for (const word of [/0600/, /0700/, /VACUUM INTO/, /pg_dump --format=custom/, /PII_KEYS/, /users-api restore DIR/]) assert.match(backupHelp.stdout, word);
    const restoreHelp = await cli(['restore', '--help'], {});
    assert.equal(restoreHelp.code, 0);
    for (const word of [/--force/, /integrity_check/, /exit code 2/, /pg_restore/]) assert.match(restoreHelp.stdout, word);
  });
});
