// PostgreSQL's prepared statements: the statements run again and again are prepared once per connection, a bounded
// number of them, and one whose table changed under it (another instance's migration) still answers; on both stores, rows read
// as arrays of values (the users' reads) keep the select's column order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import type { DatabaseConfig } from '../src/config.js';
import { openDatabase, StatementNames, type Db } from '../src/db/database.js';
import { prepare } from '../src/db/prepared.js';
import { openStore, STORES, type TestStore } from './helpers/app.js';

describe('StatementNames', () => {
  it('names a text with parameters the second time it is seen, the same name ever after, and never one without', () => {
    const names = new StatementNames();
    assert.equal(names.nameOf('select $1', [1]), undefined, 'seen once');
    const name = names.nameOf('select $1', [2]);
    assert.match(name ?? '', /^users_api_\d+$/);
    assert.equal(names.nameOf('select $1', [3]), name);
    assert.equal(names.nameOf('begin', []), undefined);
    assert.equal(names.nameOf('begin', []), undefined);
    assert.notEqual(names.nameOf('select $1, $2', [1, 2]) ?? names.nameOf('select $1, $2', [1, 2]), name);
  });

  it('names at most MAX_NAMED texts, however many it sees', () => {
    const names = new StatementNames();
    const given = new Set<string>();
    for (let i = 0; i < StatementNames.MAX_NAMED + 50; i++) {
      for (let seen = 0; seen < 3; seen++) {
        const name = names.nameOf(`select ${i} where $1`, [i]);
        if (name !== undefined) given.add(name);
      }
    }
    assert.equal(given.size, StatementNames.MAX_NAMED);
    assert.equal(names.size, StatementNames.MAX_NAMED);
    assert.equal(names.nameOf('select 1 where $1', [1]), names.nameOf('select 1 where $1', [1]), 'the named ones keep their names');
  });
});

for (const store of STORES.filter((s) => s === 'postgres')) {
  describe('prepared statements (postgres)', () => {
    let test: TestStore;
    /** One connection, so that the session's prepared statements can be seen. */
    let db: Db;
    let database: Extract<DatabaseConfig, { kind: 'postgres' }>;

    before(async () => {
      test = await openStore(store, { migrate: false });
      assert.equal(test.database.kind, 'postgres');
      database = test.database as typeof database;
      db = openDatabase({ ...database, poolSize: 1 });
      await sql`create table things (id integer primary key, name text not null)`.execute(db);
      await sql`insert into things values (1, 'one'), (2, 'two')`.execute(db);
    });
    after(async () => {
      await db.destroy();
      await test.drop();
    });

    const prepared = async (on: Db) =>
      (await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(on)).rows.map((r) => r.statement);
    const thing = (on: Db, id: number) => on.selectFrom('things' as never).selectAll().where('id' as never, '=', id as never).executeTakeFirst();

    it('prepares a statement run again on the connection, and answers from it', async () => {
      for (const id of [1, 2, 1]) assert.equal(((await thing(db, id)) as { name: string }).name, id === 1 ? 'one' : 'two');
      const statements = await prepared(db);
      assert.equal(statements.filter((s) => s.includes('"things"')).length, 1, JSON.stringify(statements));
    });

    it('answers a prepared `select *` after a column was added to its table, and the connection starts afresh', async () => {
      for (const id of [1, 2]) await thing(db, id);
      await sql`alter table things add column colour text`.execute(db);
      assert.deepEqual(await thing(db, 1), { id: 1, name: 'one', colour: null });
      assert.deepEqual(await prepared(db), [], 'the connection with the stale statement was discarded');
      assert.deepEqual(await thing(db, 2), { id: 2, name: 'two', colour: null });
    });

    it('inside a transaction the stale statement fails the transaction, and the next one succeeds', async () => {
      for (const id of [1, 2]) await thing(db, id);
      await sql`alter table things add column size integer`.execute(db);
      await assert.rejects(db.transaction().execute((trx) => thing(trx as unknown as Db, 1)), /cached plan must not change result type/);
      assert.deepEqual(await db.transaction().execute((trx) => thing(trx as unknown as Db, 2)), { id: 2, name: 'two', colour: null, size: null });
    });

    it('with DATABASE_PREPARED_STATEMENTS=false prepares nothing', async () => {
      const unprepared = openDatabase({ ...database, poolSize: 1, preparedStatements: false });
      try {
        for (const id of [1, 2, 1, 2]) await thing(unprepared, id);
        assert.deepEqual(await prepared(unprepared), []);
      } finally {
        await unprepared.destroy();
      }
    });
  });
}

for (const store of STORES) {
  describe(`a prepared query's rows as arrays of values (${store})`, () => {
    let test: TestStore;

    before(async () => {
      test = await openStore(store, { migrate: false });
      await sql`create table pairs (id integer primary key, first text not null, second text)`.execute(test.db);
      await sql`insert into pairs values (1, 'a', null), (2, 'b', 'x')`.execute(test.db);
    });
    after(() => test.drop());

    type Pair = { id: number; first: string; second: string | null };
    const query = (on: Db) =>
      prepare(on, (p: { from: number }) =>
        (on as unknown as Kysely<{ pairs: Pair }>).selectFrom('pairs').select(['second', 'id', 'first']).where('id', '>=', p.from).orderBy('id'),
      );

    it("gives each row in the order the query selects its columns, not the table's", async () => {
      assert.deepEqual(await query(test.db).values({ from: 1 }), [
        [null, 1, 'a'],
        ['x', 2, 'b'],
      ]);
      assert.deepEqual(await query(test.db).values({ from: 3 }), []);
    });

    it("leaves the same query's objects as they were, before and after", async () => {
      const pairs = query(test.db);
      assert.deepEqual(await pairs.first({ from: 2 }), { second: 'x', id: 2, first: 'b' });
      assert.deepEqual(await pairs.values({ from: 2 }), [['x', 2, 'b']]);
      assert.deepEqual(await pairs.all({ from: 1 }), [
        { second: null, id: 1, first: 'a' },
        { second: 'x', id: 2, first: 'b' },
      ]);
    });
  });
}
