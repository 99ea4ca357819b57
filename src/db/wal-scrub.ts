// Deleted and overwritten users' data leaves the SQLite files soon after the write, not megabytes of writes later.
import type SQLite from 'better-sqlite3';

/** How soon after a delete or update commits its old bytes are gone from the SQLite files. */
export const WAL_SCRUB_DELAY_MS = 250;

/**
 * secure_delete zeroes what a delete or update frees, but in the page's next version: the versions before it stay
 * in the WAL file until a checkpoint has copied the latest into the database and later writes happen to overwrite
 * those frames. A TRUNCATE checkpoint copies every page's latest version into the database and empties the WAL.
 * It runs WAL_SCRUB_DELAY_MS after the first such write, so a stream of deletes pays for one checkpoint per
 * interval, not one each.
 */
export class WalScrubber {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly connection: SQLite.Database) {}

  /** After a write that removed or overwrote a user's data has committed. */
  soon(): void {
    this.timer ??= setTimeout(this.scrub, WAL_SCRUB_DELAY_MS);
  }

  /** Before the connection closes: a scrub that is due runs now. */
  flush(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.scrub();
  }

  private readonly scrub = (): void => {
    this.timer = undefined;
    if (!this.connection.open) return;
    // A Kysely transaction holds the connection (a bulk-import batch): after it.
    if (this.connection.inTransaction) return this.soon();
    // The checkpoint must not block the event loop waiting for another process (a CLI command reading or writing
    // the same file): it reports busy at once, and is tried again later.
    const busyTimeout = this.connection.pragma('busy_timeout', { simple: true }) as number;
    this.connection.pragma('busy_timeout = 0');
    let done = false;
    try {
      const [result] = this.connection.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
      done = result?.busy === 0;
    } catch {
      // SQLITE_BUSY or an I/O error: the writes themselves report those; the scrub is tried again.
    } finally {
      this.connection.pragma(`busy_timeout = ${busyTimeout}`);
    }
    if (!done) this.soon();
  };
}
