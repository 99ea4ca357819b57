// Accounts' persistence, scoped by client_id like users; every change to a connection rewrites the user's
// items_connected / employers_connected in the same transaction, so the user row always reads exact.
import { dialectOf, type AccountsTable, type Db } from '../db/database.js';
import { prepare, rawWrite, type BoundWrite } from '../db/prepared.js';
import { KeysetQueries, type KeysetSource } from '../paging/keyset.js';
import { timestampNow } from '../clock.js';

type Key = { clientId: string; id: string };

/** Every column, once (the compiler checks the list is complete): prepared queries name their arguments. */
const COLUMN_SET: Record<keyof AccountsTable, true> = {
  client_id: true,
  id: true,
  user_id: true,
  item: true,
  source: true,
  employers: true,
  created_at: true,
  updated_at: true,
  scanned_at: true,
  status: true,
  error_code: true,
  error_message: true,
  connection_updated_at: true,
  connected_at: true,
  version: true,
};
const COLUMNS = Object.keys(COLUMN_SET) as Array<keyof AccountsTable>;

/**
 * The user's arrays from its connected accounts: distinct items, then distinct employers, each in the order the
 * accounts first connected (employers in their order within an account). Parameters: client, user, client, user.
 */
const RECOMPUTE = {
  sqlite: `update users set
    items_connected = (select json_group_array(item order by f) from
      (select item, min(connected_at || id) as f from accounts
        where client_id = ? and user_id = ? and status = 'connected' group by item)),
    employers_connected = (select json_group_array(value order by f) from
      (select e.value as value, min(a.connected_at || a.id || printf('%06d', e.key)) as f
        from accounts a, json_each(a.employers) e
        where a.client_id = ? and a.user_id = ? and a.status = 'connected' group by e.value))
    where client_id = ? and id = ?`,
  postgres: `update users set
    items_connected = coalesce((select jsonb_agg(item order by f) from
      (select item, min(to_char(connected_at, 'YYYYMMDDHH24MISSUS') || id::text) as f from accounts
        where client_id = $1 and user_id = $2 and status = 'connected' group by item) s), '[]'::jsonb),
    employers_connected = coalesce((select jsonb_agg(value order by f) from
      (select e.value, min(to_char(a.connected_at, 'YYYYMMDDHH24MISSUS') || a.id::text || lpad(e.ord::text, 6, '0')) as f
        from accounts a cross join lateral jsonb_array_elements_text(a.employers) with ordinality as e(value, ord)
        where a.client_id = $1 and a.user_id = $2 and a.status = 'connected' group by e.value) s), '[]'::jsonb)
    where client_id = $1 and id = $2`,
} as const;

export class AccountsRepository {
  private readonly byId;
  private readonly byUserItem;
  private readonly insert;
  private readonly update;
  private readonly remove;
  private readonly lockUser;
  readonly pages: KeysetSource<AccountsTable>;

  constructor(private readonly db: Db) {
    this.byId = prepare(db, (p: Key) => db.selectFrom('accounts').selectAll().where('client_id', '=', p.clientId).where('id', '=', p.id));
    this.byUserItem = prepare(db, (p: { clientId: string; userId: string; item: string }) =>
      db
        .selectFrom('accounts')
        .selectAll()
        .where('client_id', '=', p.clientId)
        .where('user_id', '=', p.userId)
        .where('item', '=', p.item),
    );
    this.insert = prepare(db, (p: AccountsTable) =>
      db.insertInto('accounts').values(Object.fromEntries(COLUMNS.map((c) => [c, p[c]])) as unknown as AccountsTable),
    );
    this.update = prepare(db, (p: AccountsTable & { expectedVersion: number }) =>
      db
        .updateTable('accounts')
        .set({
          employers: p.employers,
          updated_at: p.updated_at,
          scanned_at: p.scanned_at,
          status: p.status,
          error_code: p.error_code,
          error_message: p.error_message,
          connection_updated_at: p.connection_updated_at,
          connected_at: p.connected_at,
          version: p.version,
        })
        .where('client_id', '=', p.client_id)
        .where('id', '=', p.id)
        .where('version', '=', p.expectedVersion),
    );
    this.remove = prepare(db, (p: Key) => db.deleteFrom('accounts').where('client_id', '=', p.clientId).where('id', '=', p.id));
    // The first write of every change to a user's connections: it takes the user row's lock (PostgreSQL), so the
    // arrays recomputed after it see every earlier change, and it moves the user's version (its ETag).
    this.lockUser = prepare(db, (p: Key & { now: string }) =>
      db
        .updateTable('users')
        .set((eb) => ({ version: eb('version', '+', 1), updated_at: p.now }))
        .where('client_id', '=', p.clientId)
        .where('id', '=', p.id),
    );
    const pages = new KeysetQueries(db, 'accounts', { user: 'user_id', item: 'item' });
    this.pages = { page: (position, limit) => pages.page(position, limit), hasBeyond: (position) => pages.hasBeyond(position) };
  }

  find(clientId: string, id: string): Promise<AccountsTable | undefined> {
    return this.byId.first({ clientId, id });
  }

  findByItem(clientId: string, userId: string, item: string): Promise<AccountsTable | undefined> {
    return this.byUserItem.first({ clientId, userId, item });
  }

  bindInsert(row: AccountsTable): BoundWrite {
    return this.insert.bind(row);
  }

  /** The writes of a change to one of a user's accounts: lock the user, `change`, recompute the user's arrays. */
  withUserArrays(clientId: string, userId: string, change: BoundWrite): BoundWrite[] {
    const dialect = dialectOf(this.db);
    // SQLite binds each `?` once; PostgreSQL names $1 and $2 again.
    const parameters = dialect === 'sqlite' ? [clientId, userId, clientId, userId, clientId, userId] : [clientId, userId];
    const text = RECOMPUTE[dialect];
    return [this.lockUser.bind({ clientId, id: userId, now: timestampNow() }), change, rawWrite(this.db, text, parameters)];
  }

  bindUpdate(row: AccountsTable, expectedVersion: number): BoundWrite {
    return this.update.bind({ ...row, expectedVersion });
  }

  bindRemove(clientId: string, id: string): BoundWrite {
    return this.remove.bind({ clientId, id });
  }
}
