// Group commit on the embedded store: the writes issued in one turn of the event loop share one transaction.
import type SQLite from 'better-sqlite3';
import type { DbObserver } from './observer.js';

/** One run of a prepared statement. */
export interface Step {
  statement: SQLite.Statement;
  parameters: readonly unknown[];
  /** When set, the step must change exactly this many rows, or the whole unit is undone (WriteConflictError). */
  expectRows?: number;
}

/** A guarded step (a compare-and-set) found the row changed meanwhile: nothing of its unit was written. */
export class WriteConflictError extends Error {
  constructor() {
    super('a guarded write found its row changed; the unit was undone');
  }
}

interface Write {
  /** Several steps run all or none (a user with its idempotency record, a bulk-import batch). */
  steps: readonly Step[];
  /** With the rows each step changed. */
  resolve: (changes: number[]) => void;
  reject: (error: unknown) => void;
}

const sum = (changes: number[]) => changes.reduce((a, b) => a + b, 0);

/**
 * With synchronous=FULL every COMMIT waits for the disk, so one transaction per write caps writes at
 * the disk's flush rate. Here the writes queued during one turn of the event loop run in one
 * transaction: one flush covers them all. Each write still succeeds or fails on its own (SQLite undoes
 * only the failing statement), and no promise settles before COMMIT has returned, so nothing is
 * acknowledged before it is as durable as `synchronous` makes it.
 */
export class GroupCommit {
  private pending: Write[] = [];
  /** Transaction control, prepared once: exec() would parse its SQL on every group and every unit. */
  private readonly control;

  constructor(
    private readonly connection: SQLite.Database,
    private readonly observer: DbObserver = {},
  ) {
    const statement = (text: string) => connection.prepare(text);
    this.control = {
      begin: statement('BEGIN IMMEDIATE'),
      commit: statement('COMMIT'),
      savepoint: statement('SAVEPOINT batch'),
      release: statement('RELEASE batch'),
    };
  }

  /** Runs a write statement in the next group; resolves with the number of rows it changed. */
  async run(statement: SQLite.Statement, parameters: readonly unknown[]): Promise<number> {
    return sum(await this.runSteps([{ statement, parameters }]));
  }

  /** Runs a write statement once per parameter list, all in the next group, all or none. */
  async runAll(statement: SQLite.Statement, runs: ReadonlyArray<readonly unknown[]>): Promise<number> {
    return sum(await this.runSteps(runs.map((parameters) => ({ statement, parameters }))));
  }

  /** Runs the steps in order in the next group, all or none; resolves with the rows each changed. */
  runSteps(steps: readonly Step[]): Promise<number[]> {
    const { statement: observe } = this.observer;
    // Traced as one unit, in the caller's context, from queueing to COMMIT: the wait for the group is its cost too.
    return observe ? observe(steps[0]?.statement.source ?? '', () => this.enqueue(steps)) : this.enqueue(steps);
  }

  private enqueue(steps: readonly Step[]): Promise<number[]> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ steps, resolve, reject }) === 1) setImmediate(this.flushSoon);
    });
  }

  private readonly flushSoon = (): void => {
    // A Kysely transaction holds the connection (bulk import): join the queue behind it.
    if (this.connection.inTransaction) setImmediate(this.flushSoon);
    else this.flush();
  };

  /** Commits everything queued now (also called before the connection closes). */
  flush(): void {
    const group = this.pending;
    this.pending = [];
    if (group.length === 0) return;
    const changes: number[][] = [];
    const failures = new Map<Write, unknown>();
    try {
      this.control.begin.run();
      for (const write of group) {
        try {
          changes.push(this.execute(write));
        } catch (error) {
          // A constraint failure undoes this statement only; an I/O error ends the whole transaction.
          if (!this.connection.inTransaction) throw error;
          failures.set(write, error);
          changes.push([]);
        }
      }
      const started = this.observer.groupCommitted ? performance.now() : 0;
      this.control.commit.run();
      this.observer.groupCommitted?.(group.length, (performance.now() - started) / 1000);
    } catch (error) {
      if (this.connection.inTransaction) this.connection.exec('ROLLBACK');
      for (const write of group) write.reject(error);
      return;
    }
    group.forEach((write, i) => (failures.has(write) ? write.reject(failures.get(write)) : write.resolve(changes[i] ?? [])));
  }

  /** One write inside the group's transaction: a failing statement undoes itself, a failing batch its savepoint. */
  private execute({ steps }: Write): number[] {
    if (steps.length === 1 && steps[0]!.expectRows === undefined) return [steps[0]!.statement.run(...steps[0]!.parameters).changes];
    this.control.savepoint.run();
    try {
      const changes = steps.map(({ statement, parameters, expectRows }) => {
        const changed = statement.run(...parameters).changes;
        if (expectRows !== undefined && changed !== expectRows) throw new WriteConflictError();
        return changed;
      });
      this.control.release.run();
      return changes;
    } catch (error) {
      if (this.connection.inTransaction) {
        try {
          this.connection.exec('ROLLBACK TO batch; RELEASE batch');
        } catch {
          // The batch could not be undone alone: undo the whole group rather than commit half of it.
          this.connection.exec('ROLLBACK');
        }
      }
      throw error;
    }
  }
}
