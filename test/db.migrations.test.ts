import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrations.js';

describe('migrations (sqlite)', () => {
  it('migrate an empty database, then migrating again is a no-op', async () => {
    const db = openDatabase({ kind: 'sqlite', path: ':memory:' });
    try {
      const first = await migrateToLatest(db);
      assert.ok((first.results ?? []).length > 0);
      assert.ok((first.results ?? []).every((r) => r.status === 'Success'));
      const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' order by name`.execute(db);
      for (const table of ['api_keys', 'clients', 'users']) assert.ok(tables.rows.some((r) => r.name === table), table);
      const second = await migrateToLatest(db);
      assert.deepEqual(second.results, []);
    } finally {
      await db.destroy();
    }
  });

  it('listing and the external_id filter are served by indexes, not table scans', async () => {
    const db = openDatabase({ kind: 'sqlite', path: ':memory:' });
    try {
      await migrateToLatest(db);
      const plan = async (query: string) =>
        (await sql.raw<{ detail: string }>(`explain query plan ${query}`).execute(db)).rows.map((r) => r.detail).join(' | ');
      assert.match(await plan("select * from users where client_id = 'c' and id = 'x'"), /USING (PRIMARY KEY|INDEX)/);
      assert.match(await plan("select * from users where client_id = 'c' and id > 'x' order by id limit 11"), /USING (PRIMARY KEY|INDEX)/);
      const filtered = await plan("select * from users where client_id = 'c' and external_id = 'e' and id > 'x' order by id limit 11");
      assert.match(filtered, /users_client_external_id_idx/);
      assert.doesNotMatch(filtered, /TEMP B-TREE/);
    } finally {
      await db.destroy();
    }
  });

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
