// SQL for tenants (clients) and their API keys.
import type { ApiKeysTable, ClientsTable, Db } from '../db/database.js';
import { KeysetQueries, type KeysetSource } from '../paging/keyset.js';

/** A key as it is listed: never its secret's hash. */
export type ListedKeyRow = Omit<ApiKeysTable, 'secret_hash'>;

const LISTED_COLUMNS = ['id', 'client_id', 'name', 'created_at', 'revoked_at'] as const satisfies ReadonlyArray<keyof ListedKeyRow>;

/** Pages of a client's keys in creation order: key ids are random, so created_at leads the keyset and the id breaks ties. */
export function apiKeyPages(db: Db): KeysetSource<ListedKeyRow> {
  const queries = new KeysetQueries(db, 'api_keys', {}, ['created_at', 'id']);
  return {
    page: (position, limit) => queries.page(position, limit, LISTED_COLUMNS),
    hasBeyond: (position) => queries.hasBeyond(position),
    keyOf: (row) => queries.keyOf(row),
  };
}

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

export async function listApiKeys(db: Db): Promise<ListedKeyRow[]> {
  return db
    .selectFrom('api_keys')
    .select(LISTED_COLUMNS)
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
