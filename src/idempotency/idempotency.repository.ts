// SQL for idempotency keys: one row per (client, key), claimed by the first request that inserts it.
// Prepared once, so on SQLite the claim and the stored response join the group commit of the user's insert.
import type { Db, IdempotencyKeysTable } from '../db/database.js';
import { prepare } from '../db/prepared.js';

export type IdempotencyRecord = IdempotencyKeysTable;

type Key = { clientId: string; key: string };

export class IdempotencyRepository {
  private readonly insert;
  private readonly byKey;
  private readonly complete;
  private readonly release;

  constructor(private readonly db: Db) {
    this.insert = prepare(db, (p: IdempotencyRecord) =>
      db
        .insertInto('idempotency_keys')
        .values({
          client_id: p.client_id,
          key: p.key,
          scope: p.scope,
          request_hash: p.request_hash,
          status_code: p.status_code,
          response_body: p.response_body,
          created_at: p.created_at,
        })
        .onConflict((oc) => oc.columns(['client_id', 'key']).doNothing()),
    );
    this.byKey = prepare(db, (p: Key) =>
      db.selectFrom('idempotency_keys').selectAll().where('client_id', '=', p.clientId).where('key', '=', p.key),
    );
    this.complete = prepare(db, (p: Key & { statusCode: number; responseBody: string }) =>
      db
        .updateTable('idempotency_keys')
        .set({ status_code: p.statusCode, response_body: p.responseBody })
        .where('client_id', '=', p.clientId)
        .where('key', '=', p.key),
    );
    this.release = prepare(db, (p: Key) =>
      db.deleteFrom('idempotency_keys').where('client_id', '=', p.clientId).where('key', '=', p.key),
    );
  }

  /** Inserts the row unless the key exists; true when this caller claimed the key. */
  async claimKey(record: IdempotencyRecord): Promise<boolean> {
    return (await this.insert.run(record)) > 0;
  }

  findKey(clientId: string, key: string): Promise<IdempotencyRecord | undefined> {
    return this.byKey.first({ clientId, key });
  }

  async completeKey(clientId: string, key: string, statusCode: number, responseBody: string): Promise<void> {
    await this.complete.run({ clientId, key, statusCode, responseBody });
  }

  async releaseKey(clientId: string, key: string): Promise<void> {
    await this.release.run({ clientId, key });
  }

  /** Housekeeping, every few hundred claims: not worth a prepared statement. */
  async deleteKeysCreatedBefore(cutoff: string): Promise<void> {
    await this.db.deleteFrom('idempotency_keys').where('created_at', '<', cutoff).execute();
  }
}
