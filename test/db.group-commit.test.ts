// Group commit on the embedded store: writes of one event-loop turn share a transaction, each settles on its own.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { GroupCommit } from '../src/db/group-commit.js';

describe('group commit (SQLite)', () => {
  let dir: string;
  let connection: SQLite.Database;
  let writes: GroupCommit;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'users-api-group-commit-'));
    connection = new SQLite(join(dir, 'test.db'));
    connection.pragma('journal_mode = WAL');
    connection.exec('create table t (id integer primary key, v text not null)');
    writes = new GroupCommit(connection);
  });
  after(() => {
    connection.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits concurrent writes together; a failing one fails alone', async () => {
    const insert = connection.prepare('insert into t (id, v) values (?, ?)');
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => writes.run(insert, [i, i === 17 ? null : `v${i}`])),
    );
    const rejected = outcomes.flatMap((outcome, i) => (outcome.status === 'rejected' ? [i] : []));
    assert.deepEqual(rejected, [17]);
    assert.ok(outcomes.every((o) => o.status === 'rejected' || o.value === 1));
    assert.equal(connection.inTransaction, false);
    const ids = connection.prepare('select id from t order by id').pluck().all();
    assert.deepEqual(ids, Array.from({ length: 50 }, (_, i) => i).filter((i) => i !== 17));
  });

  it('runs a batch all or none, beside single writes of the same group', async () => {
    const insert = connection.prepare('insert into t (id, v) values (?, ?)');
    const [good, bad, single] = await Promise.allSettled([
      writes.runAll(insert, [[500, 'a'], [501, 'b'], [502, 'c']]),
      writes.runAll(insert, [[600, 'a'], [601, null], [602, 'c']]),
      writes.run(insert, [700, 'single']),
    ]);
    assert.deepEqual(good, { status: 'fulfilled', value: 3 });
    assert.equal(bad?.status, 'rejected');
    assert.deepEqual(single, { status: 'fulfilled', value: 1 });
    assert.equal(connection.inTransaction, false);
    const ids = connection.prepare('select id from t where id >= 500 order by id').pluck().all();
    assert.deepEqual(ids, [500, 501, 502, 700], 'the failing batch left no row behind');
  });

  it('settles only after the data is committed and visible to another connection', async () => {
    const update = connection.prepare('update t set v = ? where id = ?');
    const changed = await writes.run(update, ['changed', 3]);
    assert.equal(changed, 1);
    const other = new SQLite(join(dir, 'test.db'), { readonly: true });
    try {
      assert.equal(other.prepare('select v from t where id = 3').pluck().get(), 'changed');
    } finally {
      other.close();
    }
    assert.equal(await writes.run(update, ['x', 999]), 0);
  });

  it('waits behind an open transaction instead of joining it', async () => {
    const insert = connection.prepare('insert into t (id, v) values (?, ?)');
    connection.exec('BEGIN');
    connection.prepare('insert into t (id, v) values (1000, ?)').run('in transaction');
    const pending = writes.run(insert, [1001, 'queued']);
    await new Promise((resolve) => setImmediate(resolve));
    connection.exec('ROLLBACK');
    assert.equal(await pending, 1);
    const ids = connection.prepare('select id from t where id >= 1000').pluck().all();
    assert.deepEqual(ids, [1001]);
  });
});
