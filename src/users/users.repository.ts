// SQL for users. Every query is scoped by client_id, which leads every index.
import type { Db, UsersTable } from '../db/database.js';

export type UserRow = UsersTable;

export interface PagePosition {
  clientId: string;
  externalId: string | undefined;
  /** 'next' walks ids upwards from key, 'previous' downwards; no key means from the start. */
  direction: 'next' | 'previous';
  key: string | undefined;
  inclusive: boolean;
}

function scoped(db: Db, position: Omit<PagePosition, 'direction' | 'key' | 'inclusive'>) {
  let query = db.selectFrom('users').where('client_id', '=', position.clientId);
  if (position.externalId !== undefined) query = query.where('external_id', '=', position.externalId);
  return query;
}

function walk(db: Db, position: PagePosition) {
  let query = scoped(db, position);
  if (position.key !== undefined) {
    const op = position.direction === 'next' ? (position.inclusive ? '>=' : '>') : position.inclusive ? '<=' : '<';
    query = query.where('id', op, position.key);
  }
  return query.orderBy('id', position.direction === 'next' ? 'asc' : 'desc');
}

export async function insertUser(db: Db, row: UserRow): Promise<void> {
  await db.insertInto('users').values(row).execute();
}

/** Inserts many users in one transaction (bulk import). */
export async function insertUsers(db: Db, rows: UserRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.transaction().execute(async (trx) => {
    // Stay under both dialects' bound-parameter limits (SQLite 32766, PostgreSQL 65535).
    for (let i = 0; i < rows.length; i += 500) await trx.insertInto('users').values(rows.slice(i, i + 500)).execute();
  });
}

export async function findUserById(db: Db, clientId: string, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst();
}

export async function userExists(db: Db, clientId: string, id: string): Promise<boolean> {
  const row = await db
    .selectFrom('users')
    .select('id')
    .where('client_id', '=', clientId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row !== undefined;
}

/** Up to `limit` users from `position`, in walk order (descending for 'previous'). */
export async function listUsersPage(db: Db, position: PagePosition, limit: number): Promise<UserRow[]> {
  return walk(db, position).selectAll().limit(limit).execute();
}

/** Whether any user lies beyond `position` in its direction. */
export async function hasUsersBeyond(db: Db, position: PagePosition): Promise<boolean> {
  const row = await walk(db, position).select('id').limit(1).executeTakeFirst();
  return row !== undefined;
}

export async function updateUser(
  db: Db,
  clientId: string,
  id: string,
  expectedVersion: number,
  changes: Partial<UserRow>,
): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set(changes)
    .where('client_id', '=', clientId)
    .where('id', '=', id)
    .where('version', '=', expectedVersion)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deleteUser(db: Db, clientId: string, id: string): Promise<boolean> {
  const result = await db.deleteFrom('users').where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
