// Group commit on the embedded store: writes of one event-loop turn share a transaction, each settles on its own.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { connectDatabase, embeddedSqliteOf, type Db, type EmbeddedSqlite } from '../src/db/database.js';
import { GroupCommit } from '../src/db/group-commit.js';
import { prepare } from '../src/db/prepared.js';

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

describe('group commit waiting for the disk off the event loop (SQLite, synchronous=FULL)', () => {
  let dir: string;
  let connection: SQLite.Database;
  let writes: GroupCommit;
  /** Each WAL flush the group commit asks for, held until the test lets it finish (or fail). */
  let flushes: Array<{ finish: () => void; fail: (error: Error) => void }>;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'users-api-group-commit-sync-'));
    connection = new SQLite(join(dir, 'test.db'));
    connection.pragma('journal_mode = WAL');
    connection.pragma('synchronous = FULL');
    connection.exec('create table t (id integer primary key, v text not null)');
    flushes = [];
    writes = new GroupCommit(
      connection,
      {},
      () => new Promise<void>((finish, fail) => void flushes.push({ finish, fail })),
    );
  });
  after(() => {
    connection.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  it('acknowledges a group only after its WAL flush, and commits the next group after that', async () => {
    const insert = connection.prepare('insert into t (id, v) values (?, ?)');
    let settled = 0;
    const first = [writes.run(insert, [1, 'a']), writes.run(insert, [2, 'b'])].map((p) => p.then((n) => (settled++, n)));
    await turns(3);
    assert.equal(flushes.length, 1, 'the first group committed and asked for one flush');
    assert.equal(settled, 0, 'nothing is acknowledged before the flush returns');
    assert.ok(writes.undurable, 'reads have something to wait for');
    assert.deepEqual(connection.prepare('select id from t order by id').pluck().all(), [1, 2], 'committed');

    // Writes that arrive meanwhile wait for the flush: one group on its way to the disk at a time.
    const second = writes.run(insert, [3, 'c']);
    await turns(3);
    assert.equal(flushes.length, 1);
    assert.deepEqual(connection.prepare('select id from t order by id').pluck().all(), [1, 2]);

    flushes[0]!.finish();
    assert.deepEqual(await Promise.all(first), [1, 1]);
    await turns(3);
    assert.equal(flushes.length, 2, 'the waiting write formed the next group');
    assert.deepEqual(connection.prepare('select id from t order by id').pluck().all(), [1, 2, 3]);
    flushes[1]!.finish();
    assert.equal(await second, 1);
    assert.equal(writes.undurable, undefined);
    assert.equal(connection.pragma('synchronous', { simple: true }), 2, 'FULL again between groups, for writes outside them');
  });

  it('rejects every write of a group whose flush failed', async () => {
    const insert = connection.prepare('insert into t (id, v) values (?, ?)');
    const pending = Promise.allSettled([writes.run(insert, [10, 'a']), writes.run(insert, [11, 'b'])]);
    await turns(3);
    flushes.at(-1)!.fail(new Error('EIO'));
    const outcomes = await pending;
    assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected']);
  });

  it('waits for the disk on the event loop when the connection is about to close', async () => {
    const insert = connection.prepare('insert into t (id, v) values (?, ?)');
    const before = flushes.length;
    const pending = writes.run(insert, [20, 'last']);
    writes.close();
    assert.equal(await pending, 1);
    assert.equal(flushes.length, before, 'COMMIT itself waited for the disk: no flush left to run');
  });
});

describe('reads wait for a committed group still on its way to the disk (SQLite store)', () => {
  let dir: string;
  let db: Db;
  let embedded: EmbeddedSqlite;
  let finishFlush: (() => void) | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'users-api-durable-reads-'));
    db = await connectDatabase({ kind: 'sqlite', path: join(dir, 'store.db'), synchronous: 'full' });
    embedded = embeddedSqliteOf(db)!;
    await sql`create table t (id integer primary key, v text not null)`.execute(db);
    // The store's own group commit, with a WAL flush the test holds.
    (embedded as { writes: GroupCommit }).writes = new GroupCommit(embedded.connection, {}, () => new Promise<void>((finish) => (finishFlush = finish)));
  });
  after(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a prepared read and a Kysely query answer only once the write they could see is durable', async () => {
    const insert = prepare(db, (p: { id: number; v: string }) => db.insertInto('t' as never).values({ id: p.id, v: p.v } as never));
    const byId = prepare(db, (p: { id: number }) => db.selectFrom('t' as never).select(['id', 'v'] as never).where('id' as never, '=', p.id as never));
    const order: string[] = [];
    const write = insert.run({ id: 1, v: 'new' }).then(() => order.push('write acknowledged'));
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(finishFlush, 'the group committed and waits for its flush');
    const prepared = byId.first({ id: 1 }).then((row) => order.push(`prepared read ${JSON.stringify(row)}`));
    const kysely = sql<{ v: string }>`select v from t where id = 1`.execute(db).then(({ rows }) => order.push(`kysely read ${rows[0]?.v}`));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(order, [], 'no read answered while the write was not yet durable');
    finishFlush!();
    await Promise.all([write, prepared, kysely]);
    assert.deepEqual(order.sort(), ['kysely read new', 'prepared read {"id":1,"v":"new"}', 'write acknowledged']);
  });
});
