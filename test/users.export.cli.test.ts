// users-api export, run as an operator runs it: CSV as the API's, NDJSON with every field that users-api import
// reads back into a fresh store unchanged, files owner-only.
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase, type Db } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { createApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { resolveSecrets } from '../src/secrets.js';
import { basicAuth, FULL_USER_BODY, openStore, STORES, TEST_PII_KEYS, TEST_SECRET, USER_KEYS, type Store } from './helpers/app.js';
import { assertOneLineError, cleanUpProcesses, cli, COMMAND_TIMEOUT_MS, makeTempDir } from './helpers/process.js';

after(cleanUpProcesses);

/** A store the CLI can reach (a SQLite file, or a PostgreSQL schema), with the environment that points at it. */
interface CliStore {
  db: Db;
  env: NodeJS.ProcessEnv;
  drop(): Promise<void>;
}

async function cliStore(store: Store, dir: string, name: string): Promise<CliStore> {
  const secrets = { PII_KEYS: TEST_PII_KEYS, USER_TOKEN_SECRET: TEST_SECRET };
  if (store === 'sqlite') {
    const path = join(dir, `${name}.db`);
    const db = openDatabase({ kind: 'sqlite', path });
    await migrateToLatest(db);
    return { db, env: { DATABASE_URL: path, ...secrets }, drop: () => db.destroy() };
  }
  const opened = await openStore(store);
  return { db: opened.db, env: { ...opened.env, ...secrets }, drop: () => opened.drop() };
}

/** Users with every field set, and some set then cleared, as a client's API calls leave them. */
const BODIES: object[] = [
  FULL_USER_BODY,
  { ...FULL_USER_BODY, external_id: 'with "quotes", commas\r\nand lines', external_metadata: { nested: { list: [1, 2.5, 'three', null, true] }, '2': 'numeric key' } },
  { first_name: 'Ünïcødé 😀', email: 'u@example.org', ssn: '987654321', birth_date: { year: 1961, month: 12 }, address: { country: 'GB' } },
  { external_metadata: 'a string', open_banking: { end_user: { name: 'Only a name' } } },
  { external_metadata: ['any', 'json'], open_banking: {} },
  {},
];
const PATCHES: Array<[number, object]> = [
  [0, { external_metadata: null, email: null }],
  [3, { address: { city: 'Paris', country: 'FR' }, birth_date: { day: 9 } }],
];

for (const store of STORES) {
  describe(`users-api export (${store})`, { timeout: COMMAND_TIMEOUT_MS * 12 }, () => {
    let dir: string;
    let source: CliStore;
    let target: CliStore;
    let tenant: IssuedKey;
    let ids: string[];
    /** The API's CSV of the tenant, fetched while the source was served. */
    let apiCsv: string;
    let exported: string;

    before(async () => {
      dir = makeTempDir('export');
      source = await cliStore(store, dir, 'source');
      target = await cliStore(store, dir, 'target');
      const config = loadConfig({ ...source.env, RATE_LIMIT_MAX: '0', MAX_EVENT_LOOP_DELAY_MS: '0', API_KEY_CACHE_MS: '0' });
      const app = await buildApp(config, { db: source.db, secrets: resolveSecrets(config, source.db) });
      try {
        tenant = await createApiKey(source.db, { name: 'exporter' });
        const other = await createApiKey(source.db, { name: 'other' });
        const request = async (as: IssuedKey, method: 'POST' | 'PATCH' | 'GET', url: string, payload?: object) => {
          const res = await app.inject({ method, url, payload, headers: { authorization: basicAuth(as) } });
          assert.ok(res.statusCode === 200, `${method} ${url}: ${res.statusCode} ${res.body}`);
          return res;
        };
        ids = [];
        for (const body of BODIES) ids.push((await request(tenant, 'POST', '/v2/users', body)).json().id);
        for (const [i, patch] of PATCHES) await request(tenant, 'PATCH', `/v2/users/${ids[i]}`, patch);
        await request(other, 'POST', '/v2/users', { first_name: 'Mallory', external_id: 'not-yours' });
        apiCsv = (await request(tenant, 'GET', '/v2/users/export.csv')).body;
      } finally {
        await app.close();
      }
      // SQLite: the CLI gets the file to itself.
      if (store === 'sqlite') await source.db.destroy();
    });
    after(async () => {
      if (store !== 'sqlite') await source.drop();
      await target.drop();
    });

    it('--format ndjson --output FILE writes every field of every user of the client, decrypted, to an owner-only file', async () => {
      const file = join(dir, 'users.ndjson');
      // A file that was there, readable by all: it is replaced, and the new one is owner-only.
      writeFileSync(file, 'old contents\n');
      chmodSync(file, 0o644);
      const result = await cli(['export', '--client', tenant.client_id, '--format', 'ndjson', '--output', file], source.env);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, '');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dir).filter((name) => name.includes('partial')), [], 'a partial file was left');
      exported = readFileSync(file, 'utf8');
      const lines = exported.split('\n');
      assert.equal(lines.pop(), '', 'the last line ends in a newline');
      const users = lines.map((line) => JSON.parse(line));
      assert.deepEqual(users.map((user) => user.id), ids);
      for (const user of users) assert.deepEqual(Object.keys(user), [...USER_KEYS, 'open_banking']);
      assert.equal(users[1].ssn, FULL_USER_BODY.ssn);
      assert.deepEqual(users[1].address, FULL_USER_BODY.address);
      assert.deepEqual(users[1].birth_date, FULL_USER_BODY.birth_date);
      assert.deepEqual(users[1].open_banking, FULL_USER_BODY.open_banking);
      assert.equal(users[0].external_metadata, null);
      assert.equal(users[0].email, null);
      assert.deepEqual(users[3].address.city, 'Paris');
      assert.equal(exported.includes('Mallory'), false, "another client's user was exported");
    });

    it('reads back through users-api import unchanged into a fresh store, whose export is the same, byte for byte', async () => {
      const created = await cli(['keys', 'create', '--name', 'restored', '--json'], target.env);
      assert.equal(created.code, 0, created.stderr);
      const restoredClient = JSON.parse(created.stdout).client_id as string;
      const imported = await cli(['import', '--client', restoredClient, join(dir, 'users.ndjson')], target.env);
      assert.equal(imported.code, 0, imported.stderr);
      assert.deepEqual(JSON.parse(imported.stdout), { read: ids.length, imported: ids.length, rejected: 0 });
      if (store === 'postgres') {
        // The import leaves the planner statistics up to date (a never-analyzed table has reltuples -1).
        const { rows } = await sql<{ reltuples: number }>`
          select reltuples from pg_class where oid = to_regclass(current_schema() || '.users')`.execute(target.db);
        assert.equal(Number(rows[0]?.reltuples), ids.length);
      }
      const again = await cli(['export', '--client', restoredClient, '--format', 'ndjson'], target.env);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, exported);

      // Imported twice, every line is refused: a restore never overwrites.
      const twice = await cli(['import', '--client', restoredClient, join(dir, 'users.ndjson')], target.env);
      assert.equal(twice.code, 1);
      assert.deepEqual(JSON.parse(twice.stdout), { read: ids.length, imported: 0, rejected: ids.length });
      assert.match(twice.stderr, /^line 1: \{"id":\["A user with this id exists already\."\]\}$/m);
    });

    it('--format csv to standard output is the API\'s CSV, byte for byte', async () => {
      const result = await cli(['export', '--client', tenant.client_id, '--format', 'csv'], source.env);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, apiCsv);
      assert.ok(result.stdout.startsWith('id,created_at,external_id,items_connected,employers_connected\r\n'));
      for (const id of ids) assert.ok(result.stdout.includes(`\r\n${id},`), `no row for ${id}`);
      assert.equal(result.stdout.includes(FULL_USER_BODY.ssn), false);
    });

    it('refuses an unknown client, a missing or unknown format, in one line and without writing a file', async () => {
      const file = join(dir, 'never.csv');
      const ghost = '00000000-0000-4000-8000-000000000000';
      const unknown = await cli(['export', '--client', ghost, '--format', 'csv', '--output', file], source.env);
      assertOneLineError(unknown, new RegExp(`No client with id ${ghost}`));
      for (const args of [['--format', 'xml'], []]) {
        const result = await cli(['export', '--client', tenant.client_id, ...args, '--output', file], source.env);
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, /^error: (option '--format <format>' argument 'xml' is invalid\. Allowed choices are csv, ndjson\.|required option '--format <format>' not specified)/);
      }
      assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('never')), []);
    });
  });
}

describe('users-api export --help', () => {
  it('says the NDJSON holds personal data and that --output makes the file 0600', { timeout: COMMAND_TIMEOUT_MS }, async () => {
    const result = await cli(['export', '--help'], {});
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /--format <format>/);
    assert.match(result.stdout, /0600/);
    assert.match(result.stdout, /SSN/);
  });
});
