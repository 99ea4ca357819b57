// SQL for idempotency keys: one row per (client, key), claimed by the first request that inserts it.
import type { Db, IdempotencyKeysTable } from '../db/database.js';

export type IdempotencyRecord = IdempotencyKeysTable;

/** Inserts the row unless the key exists; true when this caller claimed the key. */
export async function claimKey(db: Db, record: IdempotencyRecord): Promise<boolean> {
  const result = await db
    .insertInto('idempotency_keys')
    .values(record)
    .onConflict((oc) => oc.columns(['client_id', 'key']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
}

export async function findKey(db: Db, clientId: string, key: string): Promise<IdempotencyRecord | undefined> {
  return db
    .selectFrom('idempotency_keys')
    .selectAll()
    .where('client_id', '=', clientId)
    .where('key', '=', key)
    .executeTakeFirst();
}

export async function completeKey(
  db: Db,
  clientId: string,
  key: string,
  statusCode: number,
  responseBody: string,
): Promise<void> {
  await db
    .updateTable('idempotency_keys')
    .set({ status_code: statusCode, response_body: responseBody })
    .where('client_id', '=', clientId)
    .where('key', '=', key)
    .execute();
}

export async function releaseKey(db: Db, clientId: string, key: string): Promise<void> {
  await db.deleteFrom('idempotency_keys').where('client_id', '=', clientId).where('key', '=', key).execute();
}

export async function deleteKeysCreatedBefore(db: Db, cutoff: string): Promise<void> {
  await db.deleteFrom('idempotency_keys').where('created_at', '<', cutoff).execute();
}
