// Hot queries: built and compiled by Kysely once, then run with new parameters each time.
import type SQLite from 'better-sqlite3';
import type { Compilable, CompiledQuery } from 'kysely';
import { embeddedSqliteOf, type Db } from './database.js';

/** Stands for a named argument while the query is compiled. */
class Placeholder {
  constructor(readonly name: string) {}
}

export interface PreparedQuery<A, O> {
  /** All rows the query returns. */
  all(args: A): Promise<O[]>;
  /** The first row, if any. */
  first(args: A): Promise<O | undefined>;
  /** Runs a write; resolves with the number of rows it changed. */
  run(args: A): Promise<number>;
  /**
   * SQLite only (absent on PostgreSQL, where multi-row statements are the fast path): runs a write once
   * per argument set, all or none, in one group commit; resolves with the number of rows changed.
   */
  runAll?(args: readonly A[]): Promise<number>;
  /** The write with these arguments, not yet run: for runTogether. */
  bind(args: A): BoundWrite;
}

/** What a request will answer, and the writes that must commit (together) before it may. */
export interface Planned<T> {
  value: T;
  writes: BoundWrite[];
}

/** A prepared write with its arguments, to run in one transaction with others (see runTogether). */
export interface BoundWrite {
  readonly compiled: CompiledQuery;
  /** The cached statement, on the embedded store. */
  readonly statement?: SQLite.Statement;
}

/**
 * Runs the writes in order in one transaction, all or none: on SQLite as one unit of the group commit,
 * on PostgreSQL in a transaction of its own. A write that fails (a constraint, a trigger) undoes them all.
 */
export async function runTogether(db: Db, writes: readonly BoundWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const embedded = embeddedSqliteOf(db);
  if (embedded) {
    await embedded.writes.runSteps(writes.map((w) => ({ statement: w.statement!, parameters: w.compiled.parameters })));
    return;
  }
  if (writes.length === 1) {
    await db.executeQuery(writes[0]!.compiled);
    return;
  }
  await db.transaction().execute(async (trx) => {
    for (const write of writes) await trx.executeQuery(write.compiled);
  });
}

/**
 * Compiles `build`'s query once, with placeholders for the named arguments, so a request spends no
 * time building or compiling SQL. On SQLite it runs synchronously on a cached statement and its
 * writes go through group commit (see group-commit.ts); on PostgreSQL through Kysely's executor.
 *
 *   const byId = prepare<{ id: string }, UsersTable>(db, (p) => db.selectFrom('users').selectAll().where('id', '=', p.id));
 *   const user = await byId.first({ id });
 */
export function prepare<A extends object, O>(db: Db, build: (args: A) => Compilable<O>): PreparedQuery<A, O> {
  const args = new Proxy({}, { get: (_target, name) => new Placeholder(String(name)) }) as A;
  const compiled = build(args).compile();
  const slots = compiled.parameters.map((value) => (value instanceof Placeholder ? (value.name as keyof A) : undefined));
  const parameters = (given: A) => slots.map((slot, i) => (slot === undefined ? compiled.parameters[i] : given[slot]));

  const embedded = embeddedSqliteOf(db);
  if (embedded) {
    const statement = embedded.statement(compiled.sql);
    return {
      all: async (given) => statement.all(...parameters(given)) as O[],
      first: async (given) => statement.get(...parameters(given)) as O | undefined,
      run: (given) => embedded.writes.run(statement, parameters(given)),
      runAll: (given) => embedded.writes.runAll(statement, given.map(parameters)),
      bind: (given) => ({ compiled: { ...compiled, parameters: parameters(given) }, statement }),
    };
  }
  const execute = (given: A) => db.executeQuery<O>({ ...compiled, parameters: parameters(given) } as CompiledQuery<O>);
  return {
    all: async (given) => (await execute(given)).rows,
    first: async (given) => (await execute(given)).rows[0],
    run: async (given) => Number((await execute(given)).numAffectedRows ?? 0n),
    bind: (given) => ({ compiled: { ...compiled, parameters: parameters(given) } }),
  };
}
