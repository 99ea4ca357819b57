// The rules of accounts: a connection attempt per (user, item), its reported outcome, and what the user shows of it.
import { timestampNow } from '../clock.js';
import type { AccountsTable, Db } from '../db/database.js';
import { isUniqueViolation } from '../db/database.js';
import { guarded, runTogether, WriteConflictError, type BoundWrite, type Planned } from '../db/prepared.js';
import type { EventWriter } from '../webhooks/webhooks.repository.js';
import type { WebhookEvent } from '../webhooks/webhooks.events.js';
import { errors } from '../errors.js';
import type { CursorCodec } from '../paging/cursor.js';
import { walkPage, type PageQuery } from '../paging/keyset.js';
import { canonicalUserId, newId } from '../users/users.ids.js';
import { AccountsRepository } from './accounts.repository.js';
import { CONNECTION_ERRORS, type Account, type ConnectionErrorCode, type CreateAccountBody, type ReportConnectionBody } from './accounts.schemas.js';

const UPDATE_ATTEMPTS = 20;

export interface AccountsQuery extends PageQuery {
  user?: string;
  item?: string;
}

export interface AccountPage {
  next: string | null;
  previous: string | null;
  results: Account[];
}

/** What POST /v2/link/accounts answers: 201 with a new account, 200 with the one the item already has. */
export interface Attempt {
  status: 200 | 201;
  account: Account;
}

export function accountRowToAccount(row: AccountsTable): Account {
  return {
    id: row.id,
    user: row.user_id,
    employers: JSON.parse(row.employers) as string[],
    item: row.item,
    source: row.source,
    created_at: row.created_at,
    updated_at: row.updated_at,
    scanned_at: row.scanned_at,
    connection: {
      status: row.status,
      error_code: row.error_code as ConnectionErrorCode | null,
      error_message: row.error_message,
      updated_at: row.connection_updated_at,
    },
  };
}

/** The account after the connector's report, or a 409 for an outcome of no attempt. */
function reported(current: AccountsTable, body: ReportConnectionBody, now: string): AccountsTable {
  const { status, error_message: message } = body.connection;
  const code = body.connection.error_code as ConnectionErrorCode | null | undefined;
  if (current.status === 'error') {
    throw errors.conflict(
      'This account\'s last connection attempt failed: start a new one (POST /v2/link/accounts with its item) before reporting an outcome.',
    );
  }
  if (status === 'error' && (code === undefined || code === null)) {
    throw errors.validation({ connection: { error_code: ['This field is required when status is "error".'] } });
  }
  if (status === 'connected' && ((code ?? null) !== null || (message ?? null) !== null)) {
    throw errors.validation({ connection: { non_field_errors: ['error_code and error_message must be empty when status is "connected".'] } });
  }
  const next: AccountsTable = {
    ...current,
    employers: body.employers === undefined ? current.employers : JSON.stringify(body.employers),
    updated_at: now,
    status,
    error_code: status === 'error' ? code! : null,
    error_message: status === 'error' ? (message ?? CONNECTION_ERRORS[code!]) : null,
    connection_updated_at: now,
    version: current.version + 1,
  };
  if (status === 'connected') {
    next.scanned_at = now;
    next.connected_at = current.connected_at ?? now;
  }
  return next;
}

export class AccountsService {
  private readonly repo: AccountsRepository;

  constructor(
    private readonly db: Db,
    private readonly cursors: CursorCodec,
    private readonly outbox: EventWriter,
  ) {
    this.repo = new AccountsRepository(db);
  }

  private events(row: AccountsTable, event: WebhookEvent): Promise<BoundWrite[]> {
    return this.outbox.eventWrites(row.client_id, event, { user: row.user_id, account: row.id }, () => accountRowToAccount(row));
  }

  /** GET /v2/accounts: the client's accounts in either order, filtered by user and item. */
  async list(clientId: string, query: AccountsQuery, baseUrl: string): Promise<AccountPage> {
    const user = query.user === undefined ? undefined : canonicalUserId(query.user);
    if (query.user !== undefined && user === undefined) throw errors.validation({ user: ['Enter a valid UUID.'] });
    return this.page(clientId, 'accounts', query, { user, item: query.item }, (cursor) => `${baseUrl}/v2/accounts?cursor=${cursor}`);
  }

  /** GET /v2/link/accounts: one user's accounts; its cursors work for that user only. */
  listForUser(clientId: string, userId: string, query: AccountsQuery, baseUrl: string): Promise<AccountPage> {
    return this.page(clientId, `link-accounts ${userId}`, query, { user: userId }, (cursor) => `${baseUrl}/v2/link/accounts?cursor=${cursor}`);
  }

  private async page(
    clientId: string,
    list: string,
    query: AccountsQuery,
    filters: Record<string, string | undefined>,
    link: (cursor: string) => string,
  ): Promise<AccountPage> {
    const { next, previous, rows } = await walkPage(this.repo.pages, this.cursors, clientId, list, { limit: query.limit, cursor: query.cursor, ordering: query.ordering, filters }, link);
    return { next, previous, results: rows.map(accountRowToAccount) };
  }

  async get(clientId: string, rawId: string, userId?: string): Promise<Account> {
    return accountRowToAccount(await this.findRow(clientId, rawId, userId));
  }

  /** DELETE /v2/accounts/{id}: the account goes, and the user's arrays with it, in one transaction. */
  async delete(clientId: string, rawId: string): Promise<void> {
    const row = await this.findRow(clientId, rawId);
    try {
      await runTogether(this.db, [
        ...this.repo.withUserArrays(clientId, row.user_id, guarded(this.repo.bindRemove(clientId, row.id))),
        ...(await this.events(row, 'accounts.removed')),
      ]);
    } catch (error) {
      if (error instanceof WriteConflictError) throw errors.notFound(); // deleted meanwhile
      throw error;
    }
  }

  /**
   * POST /v2/link/accounts, planned: a new account in `connecting` for an item the user has none for; for one it
   * has, that account (a failed one starts a new attempt). One account per (user, item).
   */
  async planAttempt(clientId: string, userId: string, body: CreateAccountBody): Promise<Planned<Attempt>> {
    const existing = await this.repo.findByItem(clientId, userId, body.item);
    if (!existing) {
      // The id and the creation time from one reading of the clock, as for users.
      const { id, createdAt: now } = newId();
      const row: AccountsTable = {
        client_id: clientId,
        id,
        user_id: userId,
        item: body.item,
        source: body.source ?? body.item,
        employers: JSON.stringify(body.employers ?? []),
        created_at: now,
        updated_at: now,
        scanned_at: null,
        status: 'connecting',
        error_code: null,
        error_message: null,
        connection_updated_at: now,
        connected_at: null,
        version: 1,
      };
      return {
        value: { status: 201, account: accountRowToAccount(row) },
        writes: [this.repo.bindInsert(row), ...(await this.events(row, 'accounts.added'))],
      };
    }
    if (existing.status !== 'error') return { value: { status: 200, account: accountRowToAccount(existing) }, writes: [] };
    // A failed account starts over: nothing the user shows changes (only connected accounts count).
    const now = timestampNow();
    const retried: AccountsTable = {
      ...existing,
      ...(body.employers === undefined ? {} : { employers: JSON.stringify(body.employers) }),
      updated_at: now,
      status: 'connecting',
      error_code: null,
      error_message: null,
      connection_updated_at: now,
      version: existing.version + 1,
    };
    // Guarded: a concurrent change to the account undoes this plan (WriteConflictError), and the caller plans again.
    return {
      value: { status: 200, account: accountRowToAccount(retried) },
      writes: [guarded(this.repo.bindUpdate(retried, existing.version)), ...(await this.events(retried, 'accounts.updated'))],
    };
  }

  /** A planned attempt lost a race (another first attempt for the item, or a change to its account): plan again. */
  static lostRace(error: unknown): boolean {
    return isUniqueViolation(error) || error instanceof WriteConflictError;
  }

  /** PATCH /v2/link/accounts/{id}: the connector reports the outcome; concurrent reports apply one after the other. */
  async report(clientId: string, userId: string, rawId: string, body: ReportConnectionBody): Promise<Account> {
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const current = await this.findRow(clientId, rawId, userId);
      const next = reported(current, body, timestampNow());
      const event = next.status === 'error' ? 'accounts.failed' : current.status === 'connected' ? 'accounts.updated' : 'accounts.connected';
      try {
        await runTogether(this.db, [
          ...this.repo.withUserArrays(clientId, userId, guarded(this.repo.bindUpdate(next, current.version))),
          ...(await this.events(next, event)),
        ]);
        return accountRowToAccount(next);
      } catch (error) {
        // Another report came first: read again and apply this one to what it left.
        if (!(error instanceof WriteConflictError)) throw error;
      }
    }
    throw errors.unavailable();
  }

  /** The account, if it belongs to `clientId` (and to `userId`, when given); 404 otherwise. */
  private async findRow(clientId: string, rawId: string, userId?: string): Promise<AccountsTable> {
    const id = canonicalUserId(rawId);
    const row = id === undefined ? undefined : await this.repo.find(clientId, id);
    if (!row || (userId !== undefined && row.user_id !== userId)) throw errors.notFound();
    return row;
  }
}
