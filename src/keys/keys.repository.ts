// SQL for tenants (clients) and their API keys.
import type { ApiKeysTable, ClientsTable, Db } from '../db/database.js';

export async function insertClient(db: Db, client: ClientsTable): Promise<void> {
  await db.insertInto('clients').values(client).execute();
}

export async function findClientById(db: Db, id: string): Promise<ClientsTable | undefined> {
  return db.selectFrom('clients').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertApiKey(db: Db, key: ApiKeysTable): Promise<void> {
  await db.insertInto('api_keys').values(key).execute();
}

export async function findActiveApiKey(db: Db, id: string): Promise<Pick<ApiKeysTable, 'client_id' | 'secret_hash'> | undefined> {
  return db
    .selectFrom('api_keys')
    .select(['client_id', 'secret_hash'])
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
}

export async function listApiKeys(db: Db): Promise<Omit<ApiKeysTable, 'secret_hash'>[]> {
  return db
    .selectFrom('api_keys')
    .select(['id', 'client_id', 'name', 'created_at', 'revoked_at'])
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

export async function revokeApiKey(db: Db, id: string, revokedAt: string): Promise<boolean> {
  const result = await db
    .updateTable('api_keys')
    .set({ revoked_at: revokedAt })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function countActiveApiKeys(db: Db): Promise<number> {
  const row = await db
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
    .where('revoked_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
