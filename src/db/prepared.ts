// Hot queries: built and compiled by Kysely once, then run with new parameters each time.
import type SQLite from 'better-sqlite3';
import { CompiledQuery, type Compilable } from 'kysely';
import { embeddedSqliteOf, type Db } from './database.js';
import { WriteConflictError } from './group-commit.js';

export { WriteConflictError };

/** Stands for a named argument while the query is compiled. */
class Placeholder {
  constructor(readonly name: string) {}
}

export interface PreparedQuery<A, O> {
  /** All rows the query returns. */
  all(args: A): Promise<O[]>;
  /** The first row, if any. */
  first(args: A): Promise<O | undefined>;
  /**
   * All rows as arrays of their values, in the order the query selects its columns. On SQLite this skips the row
   * objects better-sqlite3 builds one property at a time, which cost about half of a row's read (bench/RESULTS.md).
   */
  values(args: A): Promise<unknown[][]>;
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
  /** When set, the write must change exactly this many rows, or its whole unit is undone (WriteConflictError). */
  readonly expectRows?: number;
  /** A plain INSERT without RETURNING (see asOneStatement), decided once from its SQL, not per request. */
  readonly plainInsert: boolean;
}

const isPlainInsert = (text: string) => /^\s*insert\b/i.test(text) && !/\breturning\b/i.test(text);

/** isPlainInsert of the few SQL texts rawWrite sees, decided once per text rather than once per write. */
const plainInserts = new Map<string, boolean>();
function plainInsertOf(text: string): boolean {
  let plain = plainInserts.get(text);
  if (plain === undefined) {
    plain = isPlainInsert(text);
    if (plainInserts.size < 500) plainInserts.set(text, plain);
  }
  return plain;
}

/** `write` as a compare-and-set within its unit: unless it changes exactly `rows` rows, nothing of the unit is written. */
export const guarded = (write: BoundWrite, rows = 1): BoundWrite => ({ ...write, expectRows: rows });

/** A write in SQL of its own (dialect-specific text with its parameters), to run with others in runTogether. */
export function rawWrite(db: Db, text: string, parameters: readonly unknown[]): BoundWrite {
  const embedded = embeddedSqliteOf(db);
  return {
    compiled: CompiledQuery.raw(text, [...parameters]),
    plainInsert: plainInsertOf(text),
    ...(embedded ? { statement: embedded.statement(text) } : {}),
  };
}

/**
 * Runs the writes in order in one transaction, all or none: on SQLite as one unit of the group commit,
 * on PostgreSQL in a transaction of its own. A write that fails (a constraint, a trigger) undoes them all.
 * Resolves with the number of rows each write changed.
 */
export async function runTogether(db: Db, writes: readonly BoundWrite[]): Promise<number[]> {
  if (writes.length === 0) return [];
  const embedded = embeddedSqliteOf(db);
  if (embedded) {
    return embedded.writes.runSteps(
      writes.map((w) => ({ statement: w.statement!, parameters: w.compiled.parameters, expectRows: w.expectRows })),
    );
  }
  const changed = (result: { numAffectedRows?: bigint }) => Number(result.numAffectedRows ?? 0n);
  if (writes.length === 1 && writes[0]!.expectRows === undefined) return [changed(await db.executeQuery(writes[0]!.compiled))];
  const combined = asOneStatement(writes);
  if (combined) {
    const { rows } = await db.executeQuery<Record<string, number>>(combined);
    return writes.map((_, i) => Number(rows[0]?.[`c${i}`] ?? 0));
  }
  return db.transaction().execute(async (trx) => {
    const changes: number[] = [];
    for (const write of writes) {
      const rows = changed(await trx.executeQuery(write.compiled));
      if (write.expectRows !== undefined && rows !== write.expectRows) throw new WriteConflictError();
      changes.push(rows);
    }
    return changes;
  });
}

/** Units of more writes than this go as a transaction (a statement's parameters are bounded). */
const MAX_COMBINED_WRITES = 8;

/**
 * PostgreSQL: a few plain INSERTs (a user with its events and its idempotency record) as one statement, a
 * data-modifying CTE: atomic like a transaction, in one round trip instead of BEGIN, each insert, COMMIT. Only
 * inserts qualify: the parts of such a statement do not see each other's rows, which an insert never needs.
 */
function asOneStatement(writes: readonly BoundWrite[]): CompiledQuery | undefined {
  if (writes.length > MAX_COMBINED_WRITES) return undefined;
  if (!writes.every((w) => w.expectRows === undefined && w.plainInsert)) return undefined;
  const parameters: unknown[] = [];
  const parts = writes.map((write, i) => {
    const offset = parameters.length;
    parameters.push(...write.compiled.parameters);
    return `w${i} as (${write.compiled.sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + offset}`)} returning 1)`;
  });
  const counts = writes.map((_, i) => `(select count(*) from w${i})::int as c${i}`).join(', ');
  return CompiledQuery.raw(`with ${parts.join(', ')} select ${counts}`, parameters);
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
  const plainInsert = isPlainInsert(compiled.sql);

  const embedded = embeddedSqliteOf(db);
  if (embedded) {
    const statement = embedded.statement(compiled.sql);
    const { statement: observe } = embedded.observer;
    // A statement of its own: raw mode is a setting of the statement, and the cached one serves objects.
    let raw: SQLite.Statement | undefined;
    const read = {
      all: async (given: A) => statement.all(...parameters(given)) as O[],
      first: async (given: A) => statement.get(...parameters(given)) as O | undefined,
      values: async (given: A) => (raw ??= embedded.connection.prepare(compiled.sql).raw(true)).all(...parameters(given)) as unknown[][],
    };
    return {
      ...(observe
        ? {
            all: (given) => observe(compiled.sql, () => read.all(given)),
            first: (given) => observe(compiled.sql, () => read.first(given)),
            values: (given) => observe(compiled.sql, () => read.values(given)),
          }
        : read),
      run: (given) => embedded.writes.run(statement, parameters(given)),
      runAll: (given) => embedded.writes.runAll(statement, given.map(parameters)),
      bind: (given) => ({ compiled: { ...compiled, parameters: parameters(given) }, plainInsert, statement }),
    };
  }
  const execute = (given: A) => db.executeQuery<O>({ ...compiled, parameters: parameters(given) } as CompiledQuery<O>);
  return {
    all: async (given) => (await execute(given)).rows,
    first: async (given) => (await execute(given)).rows[0],
    // node-postgres builds each row's properties in the order of the result's columns.
    values: async (given) => (await execute(given)).rows.map((row) => Object.values(row as object)),
    run: async (given) => Number((await execute(given)).numAffectedRows ?? 0n),
    bind: (given) => ({ compiled: { ...compiled, parameters: parameters(given) }, plainInsert }),
  };
}
