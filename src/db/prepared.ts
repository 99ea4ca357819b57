// Hot queries: built and compiled by Kysely once, then run with new parameters each time.
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
    };
  }
  const execute = (given: A) => db.executeQuery<O>({ ...compiled, parameters: parameters(given) } as CompiledQuery<O>);
  return {
    all: async (given) => (await execute(given)).rows,
    first: async (given) => (await execute(given)).rows[0],
    run: async (given) => Number((await execute(given)).numAffectedRows ?? 0n),
  };
}
