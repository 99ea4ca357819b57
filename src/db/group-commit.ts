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
 * only the failing statement), and no promise settles before its group is on disk, so nothing is
 * acknowledged before it is as durable as `synchronous` makes it.
 *
 * Given `syncWal` (the store is FULL), the wait for the disk leaves the event loop: a group commits under
 * synchronous=NORMAL (COMMIT writes the WAL and returns), `syncWal` flushes the WAL file on libuv's thread
 * pool, and only then do the group's promises settle. Meanwhile the service goes on parsing, validating and
 * encrypting the next requests; they form the next group, which commits once this flush has returned (one
 * group on its way to the disk at a time). Reads wait for that flush too (`undurable`), so no request ever
 * sees a write before it is durable: what the blocking COMMIT gave, without blocking.
 */
export class GroupCommit {
  private pending: Write[] = [];
  /** Transaction control, prepared once: exec() would parse its SQL on every group and every unit. */
  private readonly control;
  /** The flush of the last committed group, while it runs. */
  private syncing: Promise<void> | undefined;
  private closing = false;

  constructor(
    private readonly connection: SQLite.Database,
    private readonly observer: DbObserver = {},
    /** Flushes the WAL file to disk off the event loop; without it, COMMIT waits for the disk itself. */
    private readonly syncWal?: () => Promise<void>,
  ) {
    const statement = (text: string) => connection.prepare(text);
    this.control = {
      begin: statement('BEGIN IMMEDIATE'),
      commit: statement('COMMIT'),
      savepoint: statement('SAVEPOINT batch'),
      release: statement('RELEASE batch'),
    };
  }

  /**
   * While a committed group is on its way to the disk: settles when it is there. A read waits for it first, so
   * that it never returns a write that a power loss could still take back.
   */
  get undurable(): Promise<void> | undefined {
    return this.syncing;
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
    // A group is on its way to the disk: the queue commits when it is there (see syncThen).
    else if (this.syncing === undefined) this.flush();
  };

  /** Commits what is queued and waits for the disk on the event loop, as the connection is about to close. */
  close(): void {
    this.closing = true;
    this.flush();
  }

  /** Commits everything queued now. */
  flush(): void {
    const group = this.pending;
    this.pending = [];
    if (group.length === 0) return;
    const deferred = this.syncWal !== undefined && !this.closing;
    const outcomes: Array<number[] | { error: unknown }> = [];
    let started = 0;
    try {
      // SQLite refuses to change the safety level inside a transaction (and sets it when such a PRAGMA is
      // prepared, not when it runs): around the transaction, each time.
      if (deferred) this.connection.pragma('synchronous = NORMAL');
      this.control.begin.run();
      for (const write of group) {
        try {
          outcomes.push(this.execute(write));
        } catch (error) {
          // A constraint failure undoes this statement only; an I/O error ends the whole transaction.
          if (!this.connection.inTransaction) throw error;
          outcomes.push({ error });
        }
      }
      started = this.observer.groupCommitted ? performance.now() : 0;
      this.control.commit.run();
    } catch (error) {
      if (this.connection.inTransaction) this.connection.exec('ROLLBACK');
      for (const write of group) write.reject(error);
      return;
    } finally {
      if (deferred && !this.connection.inTransaction) this.connection.pragma('synchronous = FULL');
    }
    const settle = () => {
      // From COMMIT until the group is on disk: the fsync, whether COMMIT or syncWal waited for it.
      this.observer.groupCommitted?.(group.length, (performance.now() - started) / 1000);
      group.forEach((write, i) => {
        const outcome = outcomes[i]!;
        if (Array.isArray(outcome)) write.resolve(outcome);
        else write.reject(outcome.error);
      });
    };
    if (deferred) this.syncThen(group, settle);
    else settle();
  }

  /** Settles a committed group once the WAL is on disk; then the writes queued meanwhile commit. */
  private syncThen(group: readonly Write[], settle: () => void): void {
    this.syncing = this.syncWal!()
      .then(settle, (error: unknown) => {
        // Committed but maybe not on disk: none of it is acknowledged.
        for (const write of group) write.reject(error);
      })
      .finally(() => {
        this.syncing = undefined;
        if (this.pending.length > 0) setImmediate(this.flushSoon);
      });
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
