import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { dialectOf, openDatabase, type Db } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { openStore, STORES } from './helpers/app.js';

async function tableNames(db: Db): Promise<string[]> {
  const query =
    dialectOf(db) === 'postgres'
      ? sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema()`
      : sql<{ name: string }>`select name from sqlite_master where type = 'table'`;
  return (await query.execute(db)).rows.map((r) => r.name).sort();
}

/** The plan of a query, on PostgreSQL with sequential scans off so that a usable index must show. */
async function plan(db: Db, query: string): Promise<string> {
  if (dialectOf(db) === 'sqlite') {
    return (await sql.raw<{ detail: string }>(`explain query plan ${query}`).execute(db)).rows.map((r) => r.detail).join(' | ');
  }
  return db.connection().execute(async (conn) => {
    await sql`set enable_seqscan = off`.execute(conn);
    const rows = (await sql.raw<{ 'QUERY PLAN': string }>(`explain ${query}`).execute(conn)).rows;
    await sql`reset enable_seqscan`.execute(conn);
    return rows.map((r) => r['QUERY PLAN']).join(' | ');
  });
}

const C = '00000000-0000-4000-8000-000000000001';
const U = '00000000-0000-7000-8000-000000000002';

for (const store of STORES) {
  describe(`migrations (${store})`, () => {
    it('migrates an empty database, then migrating again is a no-op', async () => {
      const { db, drop } = await openStore(store, { migrate: false });
      try {
        assert.deepEqual(await tableNames(db), []);
        const first = await migrateToLatest(db);
        assert.ok((first.results ?? []).length > 0);
        assert.ok((first.results ?? []).every((r) => r.status === 'Success'));
        const tables = await tableNames(db);
        for (const table of ['api_keys', 'clients', 'users']) assert.ok(tables.includes(table), table);
        const second = await migrateToLatest(db);
        assert.deepEqual(second.results, []);
        assert.deepEqual(await tableNames(db), tables);
      } finally {
        await drop();
      }
    });

    it('serves lookup by (client, id), listing by (client, id) and the external_id filter from indexes', async () => {
      const { db, drop } = await openStore(store);
      try {
        const lookup = await plan(db, `select * from users where client_id = '${C}' and id = '${U}'`);
        const page = await plan(db, `select * from users where client_id = '${C}' and id > '${U}' order by id limit 11`);
        const filtered = await plan(
          db,
          `select * from users where client_id = '${C}' and external_id = 'e' and id > '${U}' order by id limit 11`,
        );
        if (store === 'sqlite') {
          assert.match(lookup, /USING (PRIMARY KEY|INDEX)/);
          assert.match(page, /USING (PRIMARY KEY|INDEX)/);
          assert.match(filtered, /users_client_external_id_idx/);
          for (const p of [page, filtered]) assert.doesNotMatch(p, /TEMP B-TREE/);
        } else {
          // With seq scans off, a plan without an index would show "Seq Scan" (at a huge cost) instead.
          assert.match(lookup, /Index (Only )?Scan using \w+ on users .*Index Cond: .*client_id = .*id = /);
          assert.match(page, /Index (Only )?Scan using users_pkey on users/);
          assert.match(filtered, /Index (Only )?Scan using users_client_external_id_idx/);
          for (const p of [page, filtered]) assert.doesNotMatch(p, /Sort/);
        }
      } finally {
        await drop();
      }
    });
  });
}

describe('SQLite files', () => {
  it('creates the database file owner-only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'users-api-db-'));
    try {
      const db = openDatabase({ kind: 'sqlite', path: join(dir, 'nested', 'users.db') });
      await migrateToLatest(db);
      await db.destroy();
      assert.equal(statSync(join(dir, 'nested', 'users.db')).mode & 0o777, 0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite durability setting', () => {
  it('SQLITE_SYNCHRONOUS picks FULL (default) or NORMAL, and refuses anything else', async () => {
    const level = async (env: NodeJS.ProcessEnv) => {
      const db = openDatabase(loadConfig({ DATABASE_URL: ':memory:', ...env }).database);
      try {
        return (await sql<{ synchronous: number }>`pragma synchronous`.execute(db)).rows[0]?.synchronous;
      } finally {
        await db.destroy();
      }
    };
    assert.equal(await level({}), 2); // FULL
    assert.equal(await level({ SQLITE_SYNCHRONOUS: 'normal' }), 1); // NORMAL
    assert.throws(() => loadConfig({ SQLITE_SYNCHRONOUS: 'off' }), /SQLITE_SYNCHRONOUS must be full or normal/);
  });
});
