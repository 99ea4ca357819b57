// Users' persistence: SQL scoped by client_id (which leads every index), and encryption of personal data at rest.
import type { Db, UsersTable } from '../db/database.js';
import type { PiiCipher } from '../pii/pii.cipher.js';

/** A user as the service sees it: personal data in clear. */
export interface UserRow extends Omit<UsersTable, 'pii'> {
  ssn: string | null;
  birth_year: number | null;
  birth_month: number | null;
  birth_day: number | null;
}

export interface PagePosition {
  clientId: string;
  externalId: string | undefined;
  /** 'next' walks ids upwards from key, 'previous' downwards; no key means from the start. */
  direction: 'next' | 'previous';
  key: string | undefined;
  inclusive: boolean;
}

/** What the `pii` column holds, encrypted. */
interface SealedFields {
  ssn: string | null;
  birth_date: { year: number | null; month: number | null; day: number | null };
}

export class UsersRepository {
  constructor(
    private readonly db: Db,
    private readonly pii: PiiCipher,
  ) {}

  /** Associated data of a ciphertext: it decrypts only in its own tenant and user row. */
  private static context(row: Pick<UsersTable, 'client_id' | 'id'>): string {
    return `${row.client_id}/${row.id}/pii`;
  }

  private seal(row: UserRow): UsersTable {
    const { ssn, birth_year: year, birth_month: month, birth_day: day, ...rest } = row;
    const empty = ssn === null && year === null && month === null && day === null;
    const fields: SealedFields = { ssn, birth_date: { year, month, day } };
    return { ...rest, pii: empty ? null : this.pii.encrypt(JSON.stringify(fields), UsersRepository.context(row)) };
  }

  private open(stored: UsersTable): UserRow {
    const { pii, ...rest } = stored;
    const fields: SealedFields =
      pii === null
        ? { ssn: null, birth_date: { year: null, month: null, day: null } }
        : (JSON.parse(this.pii.decrypt(pii, UsersRepository.context(stored))) as SealedFields);
    return {
      ...rest,
      ssn: fields.ssn,
      birth_year: fields.birth_date.year,
      birth_month: fields.birth_date.month,
      birth_day: fields.birth_date.day,
    };
  }

  private scoped(position: Pick<PagePosition, 'clientId' | 'externalId'>) {
    let query = this.db.selectFrom('users').where('client_id', '=', position.clientId);
    if (position.externalId !== undefined) query = query.where('external_id', '=', position.externalId);
    return query;
  }

  private walk(position: PagePosition) {
    let query = this.scoped(position);
    if (position.key !== undefined) {
      const op = position.direction === 'next' ? (position.inclusive ? '>=' : '>') : position.inclusive ? '<=' : '<';
      query = query.where('id', op, position.key);
    }
    return query.orderBy('id', position.direction === 'next' ? 'asc' : 'desc');
  }

  async insertUser(row: UserRow): Promise<void> {
    await this.db.insertInto('users').values(this.seal(row)).execute();
  }

  /** Inserts many users in one transaction (bulk import). */
  async insertUsers(rows: UserRow[]): Promise<void> {
    if (rows.length === 0) return;
    const sealed = rows.map((row) => this.seal(row));
    await this.db.transaction().execute(async (trx) => {
      // Stay under both dialects' bound-parameter limits (SQLite 32766, PostgreSQL 65535).
      for (let i = 0; i < sealed.length; i += 500) await trx.insertInto('users').values(sealed.slice(i, i + 500)).execute();
    });
  }

  async findUserById(clientId: string, id: string): Promise<UserRow | undefined> {
    const stored = await this.db
      .selectFrom('users')
      .selectAll()
      .where('client_id', '=', clientId)
      .where('id', '=', id)
      .executeTakeFirst();
    return stored && this.open(stored);
  }

  async userExists(clientId: string, id: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('users')
      .select('id')
      .where('client_id', '=', clientId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Up to `limit` users from `position`, in walk order (descending for 'previous'). */
  async listUsersPage(position: PagePosition, limit: number): Promise<UserRow[]> {
    const rows = await this.walk(position).selectAll().limit(limit).execute();
    return rows.map((row) => this.open(row));
  }

  /** Whether any user lies beyond `position` in its direction. */
  async hasUsersBeyond(position: PagePosition): Promise<boolean> {
    const row = await this.walk(position).select('id').limit(1).executeTakeFirst();
    return row !== undefined;
  }

  /** Compare-and-set: writes `row` only if the stored version is still `expectedVersion`. */
  async updateUser(row: UserRow, expectedVersion: number): Promise<boolean> {
    const { client_id: clientId, id, created_at: _created, ...columns } = this.seal(row);
    const result = await this.db
      .updateTable('users')
      .set(columns)
      .where('client_id', '=', clientId)
      .where('id', '=', id)
      .where('version', '=', expectedVersion)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Deletes the user, only at `expectedVersion` when given. */
  async deleteUser(clientId: string, id: string, expectedVersion?: number): Promise<boolean> {
    let query = this.db.deleteFrom('users').where('client_id', '=', clientId).where('id', '=', id);
    if (expectedVersion !== undefined) query = query.where('version', '=', expectedVersion);
    const result = await query.executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /**
   * Re-encrypts up to `limit` users after `after` (in (client_id, id) order) whose personal data is
   * under an old key. Returns the last position seen and how many rows were rewritten.
   */
  async reencryptBatch(
    after: { clientId: string; id: string } | undefined,
    limit: number,
  ): Promise<{ last: { clientId: string; id: string } | undefined; rewritten: number }> {
    let query = this.db.selectFrom('users').selectAll().orderBy('client_id').orderBy('id').limit(limit);
    if (after) {
      query = query.where((eb) =>
        eb.or([
          eb('client_id', '>', after.clientId),
          eb.and([eb('client_id', '=', after.clientId), eb('id', '>', after.id)]),
        ]),
      );
    }
    const rows = await query.execute();
    let rewritten = 0;
    for (const stored of rows) {
      if (stored.pii === null || !this.pii.isStale(stored.pii)) continue;
      const { pii } = this.seal(this.open(stored));
      // Same version, same content: a concurrent PATCH wins and already wrote under the new key.
      const result = await this.db
        .updateTable('users')
        .set({ pii })
        .where('client_id', '=', stored.client_id)
        .where('id', '=', stored.id)
        .where('version', '=', stored.version)
        .executeTakeFirst();
      if (result.numUpdatedRows > 0n) rewritten++;
    }
    const last = rows.at(-1);
    return { last: last && { clientId: last.client_id, id: last.id }, rewritten };
  }
}
