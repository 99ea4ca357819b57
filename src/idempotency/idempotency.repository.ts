// SQL for idempotency keys: one row per (client, key), written with the response in the transaction of the work itself.
// Prepared once, so on SQLite the record joins the group commit of the user's insert.
import type { Db, IdempotencyKeysTable } from '../db/database.js';
import { prepare, type BoundWrite } from '../db/prepared.js';

export type IdempotencyRecord = IdempotencyKeysTable;

type Key = { clientId: string; key: string };

export class IdempotencyRepository {
  private readonly insert;
  private readonly byKey;
  private readonly remove;

  constructor(private readonly db: Db) {
    // A plain insert: a concurrent request that stored the same key first makes it fail, and with it the whole
    // transaction it is part of (the user it would have created included).
    this.insert = prepare(db, (p: IdempotencyRecord) =>
      db.insertInto('idempotency_keys').values({
        client_id: p.client_id,
        key: p.key,
        scope: p.scope,
        request_hash: p.request_hash,
        status_code: p.status_code,
        response_body: p.response_body,
        created_at: p.created_at,
      }),
    );
    this.byKey = prepare(db, (p: Key) =>
      db.selectFrom('idempotency_keys').selectAll().where('client_id', '=', p.clientId).where('key', '=', p.key),
    );
    this.remove = prepare(db, (p: Key) =>
      db.deleteFrom('idempotency_keys').where('client_id', '=', p.clientId).where('key', '=', p.key),
    );
  }

  /** The insert of a completed record, to run in the same transaction as the work it answers for. */
  bindInsert(record: IdempotencyRecord): BoundWrite {
    return this.insert.bind(record);
  }

  findKey(clientId: string, key: string): Promise<IdempotencyRecord | undefined> {
    return this.byKey.first({ clientId, key });
  }

  async deleteKey(clientId: string, key: string): Promise<void> {
    await this.remove.run({ clientId, key });
  }

  /** Housekeeping, every few hundred stored keys: not worth a prepared statement. */
  async deleteKeysCreatedBefore(cutoff: string): Promise<void> {
    await this.db.deleteFrom('idempotency_keys').where('created_at', '<', cutoff).execute();
  }
}
