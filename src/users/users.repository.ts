// Users' persistence: SQL scoped by client_id (which leads every index), and encryption of personal data at rest.
import { embeddedSqliteOf, type Db, type EmbeddedSqlite, type UsersTable } from '../db/database.js';
import { PiiCorruptError, type PiiCipher } from '../pii/pii.cipher.js';
import { prepare, type BoundWrite } from '../db/prepared.js';
import { KeysetQueries, type KeysetSource } from '../paging/keyset.js';

/** A user as the service sees it: personal data in clear. */
export interface UserRow extends Omit<UsersTable, 'pii'> {
  ssn: string | null;
  birth_year: number | null;
  birth_month: number | null;
  birth_day: number | null;
}

/** What the CSV export reads of a user: nothing personal, so nothing to decrypt. */
export type UserSummaryRow = Pick<UsersTable, 'id' | 'created_at' | 'external_id' | 'items_connected' | 'employers_connected'>;
const SUMMARY_COLUMNS = ['id', 'created_at', 'external_id', 'items_connected', 'employers_connected'] as const satisfies ReadonlyArray<keyof UserSummaryRow>;

/** What the `pii` column holds, encrypted. */
interface SealedFields {
  ssn: string | null;
  birth_date: { year: number | null; month: number | null; day: number | null };
}

/** Every column of the users table, once (the compiler checks the list is complete). */
const COLUMN_SET: Record<keyof UsersTable, true> = {
  client_id: true,
  id: true,
  created_at: true,
  updated_at: true,
  version: true,
  external_id: true,
  first_name: true,
  last_name: true,
  email: true,
  phone_number: true,
  pii: true,
  address_city: true,
  address_line1: true,
  address_line2: true,
  address_state: true,
  address_country: true,
  address_postal_code: true,
  external_metadata: true,
  open_banking: true,
  items_connected: true,
  employers_connected: true,
};
const USERS_COLUMNS = Object.keys(COLUMN_SET) as Array<keyof UsersTable>;
/** Where each column is in a row read as an array of its values (reads select USERS_COLUMNS, in this order). */
const AT = Object.fromEntries(USERS_COLUMNS.map((column, i) => [column, i])) as Record<keyof UsersTable, number>;
/** A row as the array reads give it. */
type StoredValues = readonly unknown[];
const valuesOf = (stored: UsersTable): StoredValues => USERS_COLUMNS.map((column) => stored[column]);
/** What an update may change: not the row's identity or creation time. */
const UPDATABLE_COLUMNS = USERS_COLUMNS.filter((c) => c !== 'client_id' && c !== 'id' && c !== 'created_at');

const NO_PII: SealedFields = { ssn: null, birth_date: { year: null, month: null, day: null } };

export class UsersRepository {
  private readonly byId;
  private readonly existsById;
  private readonly insert;
  private readonly update;
  private readonly removeVersion;
  /** Pages of users in id order, filtered by external_id, decrypted. */
  readonly pages: KeysetSource<UserRow>;
  /** The same pages with the summary columns only (never the personal ones). */
  readonly summaryPages: KeysetSource<UserSummaryRow>;
  /** On SQLite: a deleted or overwritten user's old bytes are scrubbed from the WAL soon after (see wal-scrub.ts). */
  private readonly embedded: EmbeddedSqlite | undefined;

  constructor(
    readonly db: Db,
    private readonly pii: PiiCipher,
  ) {
    type Key = { clientId: string; id: string };
    const user = (p: Key) => db.selectFrom('users').where('client_id', '=', p.clientId).where('id', '=', p.id);
    this.byId = prepare(db, (p: Key) => user(p).select(USERS_COLUMNS));
    this.existsById = prepare(db, (p: Key) => user(p).select('id'));
    const columns = (p: UsersTable, names: ReadonlyArray<keyof UsersTable>) => Object.fromEntries(names.map((c) => [c, p[c]]));
    this.insert = prepare(db, (p: UsersTable) => db.insertInto('users').values(columns(p, USERS_COLUMNS) as unknown as UsersTable));
    this.update = prepare(db, (p: UsersTable & { expectedVersion: number }) =>
      db
        .updateTable('users')
        .set(columns(p, UPDATABLE_COLUMNS))
        .where('client_id', '=', p.client_id)
        .where('id', '=', p.id)
        .where('version', '=', p.expectedVersion),
    );
    this.removeVersion = prepare(db, (p: Key & { version: number }) =>
      db.deleteFrom('users').where('client_id', '=', p.clientId).where('id', '=', p.id).where('version', '=', p.version),
    );
    const pages = new KeysetQueries(db, 'users', { external_id: 'external_id' });
    this.pages = {
      page: async (position, limit) => (await pages.values(position, limit, USERS_COLUMNS)).map((values) => this.open(values)),
      hasBeyond: (position) => pages.hasBeyond(position),
    };
    this.summaryPages = {
      page: (position, limit) => pages.page(position, limit, SUMMARY_COLUMNS),
      hasBeyond: (position) => pages.hasBeyond(position),
    };
    this.embedded = embeddedSqliteOf(db);
  }

  /** Associated data of a ciphertext: it decrypts only in its own tenant and user row. */
  private static context(clientId: string, id: string): string {
    return `${clientId}/${id}/pii`;
  }

  private seal(row: UserRow): UsersTable {
    const { ssn, birth_year: year, birth_month: month, birth_day: day, ...rest } = row;
    const empty = ssn === null && year === null && month === null && day === null;
    const fields: SealedFields = { ssn, birth_date: { year, month, day } };
    return { ...rest, pii: empty ? null : this.pii.encrypt(JSON.stringify(fields), UsersRepository.context(row.client_id, row.id)) };
  }

  /**
   * From the row's values, written out field by field: no object per row before this one (better-sqlite3 sets a row
   * object's properties one at a time), and no object rest or spread, a measurable share of a read.
   */
  private open(stored: StoredValues): UserRow {
    const pii = stored[AT.pii] as string | null;
    const clientId = stored[AT.client_id] as string;
    const id = stored[AT.id] as string;
    const fields = pii === null ? NO_PII : this.unseal(pii, clientId, id);
    return {
      client_id: clientId,
      id,
      created_at: stored[AT.created_at] as string,
      updated_at: stored[AT.updated_at] as string,
      version: stored[AT.version] as number,
      external_id: stored[AT.external_id] as string | null,
      first_name: stored[AT.first_name] as string | null,
      last_name: stored[AT.last_name] as string | null,
      email: stored[AT.email] as string | null,
      phone_number: stored[AT.phone_number] as string | null,
      ssn: fields.ssn,
      birth_year: fields.birth_date.year,
      birth_month: fields.birth_date.month,
      birth_day: fields.birth_date.day,
      address_city: stored[AT.address_city] as string | null,
      address_line1: stored[AT.address_line1] as string | null,
      address_line2: stored[AT.address_line2] as string | null,
      address_state: stored[AT.address_state] as string | null,
      address_country: stored[AT.address_country] as string | null,
      address_postal_code: stored[AT.address_postal_code] as string | null,
      external_metadata: stored[AT.external_metadata] as UsersTable['external_metadata'],
      open_banking: stored[AT.open_banking] as UsersTable['open_banking'],
      items_connected: stored[AT.items_connected] as UsersTable['items_connected'],
      employers_connected: stored[AT.employers_connected] as UsersTable['employers_connected'],
    };
  }

  private unseal(pii: string, clientId: string, id: string): SealedFields {
    try {
      return JSON.parse(this.pii.decrypt(pii, UsersRepository.context(clientId, id))) as SealedFields;
    } catch (error) {
      // Name the row (ids only) for the operator; the request fails rather than show the user without its data.
      if (error instanceof PiiCorruptError || error instanceof SyntaxError) throw new PiiCorruptError(`user ${id}`);
      throw error;
    }
  }

  /** The insert of a new user, to run with other writes in one transaction (see runTogether). */
  bindInsert(row: UserRow): BoundWrite {
    return this.insert.bind(this.seal(row));
  }

  /** Inserts many users in one transaction (bulk import). */
  async insertUsers(rows: UserRow[]): Promise<void> {
    if (rows.length === 0) return;
    const sealed = rows.map((row) => this.seal(row));
    // SQLite: the prepared statement once per row, all or none, inside one group commit.
    if (this.insert.runAll) {
      await this.insert.runAll(sealed);
      return;
    }
    // PostgreSQL: a round trip per 500 rows, in one transaction.
    await this.db.transaction().execute(async (trx) => {
      // Stay under both dialects' bound-parameter limits (SQLite 32766, PostgreSQL 65535).
      for (let i = 0; i < sealed.length; i += 500) await trx.insertInto('users').values(sealed.slice(i, i + 500)).execute();
    });
  }

  async findUserById(clientId: string, id: string): Promise<UserRow | undefined> {
    const [stored] = await this.byId.values({ clientId, id });
    return stored && this.open(stored);
  }

  /** Which of `ids` the client has already. */
  async existingUserIds(clientId: string, ids: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    // Under both dialects' bound-parameter limits, as insertUsers.
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.db.selectFrom('users').select('id').where('client_id', '=', clientId).where('id', 'in', ids.slice(i, i + 500)).execute();
      for (const row of rows) found.add(row.id);
    }
    return found;
  }

  async userExists(clientId: string, id: string): Promise<boolean> {
    return (await this.existsById.first({ clientId, id })) !== undefined;
  }

  /** The compare-and-set update, to run with other writes in one transaction (guard it: see `guarded`). */
  bindUpdate(row: UserRow, expectedVersion: number): BoundWrite {
    return this.update.bind({ ...this.seal(row), expectedVersion });
  }

  /** The delete at `version`, to run with other writes in one transaction (guard it: see `guarded`). */
  bindRemove(clientId: string, id: string, version: number): BoundWrite {
    return this.removeVersion.bind({ clientId, id, version });
  }

  /** Compare-and-set: writes `row` only if the stored version is still `expectedVersion`. */
  async updateUser(row: UserRow, expectedVersion: number): Promise<boolean> {
    return (await this.update.run({ ...this.seal(row), expectedVersion })) > 0;
  }

  /**
   * After a committed delete: the user's bytes leave the SQLite WAL soon (see wal-scrub.ts). Not after a PATCH: a
   * checkpoint per 250 ms cost a quarter of PATCH throughput and multiplied its p99 by 10 (bench/RESULTS.md).
   */
  erased(): void {
    this.embedded?.wal.soon();
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
      const { pii } = this.seal(this.open(valuesOf(stored)));
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
