// Subscriptions and deliveries in the store, and the outbox: the delivery rows of an event, bound to be written
// in the same transaction as the change that caused it.
import { CompiledQuery } from 'kysely';
import { isoMicros, nowMicros, timestampNow } from '../clock.js';
import { embeddedSqliteOf, type Db, type WebhookDeliveriesTable, type WebhookEventsTable, type WebhooksTable } from '../db/database.js';
import { guarded, prepare, rawWrite, runTogether, WriteConflictError, type BoundWrite } from '../db/prepared.js';
import { KeysetQueries, type KeysetSource } from '../paging/keyset.js';
import type { PiiCipher } from '../pii/pii.cipher.js';
import { newId } from '../users/users.ids.js';
import type { WebhookEvent } from './webhooks.events.js';

export type DeliveryRow = Omit<WebhookDeliveriesTable, 'seq'> & { seq: number };

type Key = { clientId: string; id: string };

/** What an attempt settles. */
type Outcome = Pick<WebhookDeliveriesTable, 'status' | 'next_attempt_at' | 'last_status_code' | 'last_error' | 'delivered_at'>;

/** A delivery attempted, and what its attempt settles. */
export interface Settled {
  row: DeliveryRow;
  outcome: Outcome;
}

/** The event body: the real service's shape. */
export interface EventData {
  user: string;
  account?: string;
}

/** A subscription as events are matched against it. */
interface Subscription {
  id: string;
  name: string;
  include_resource: number;
  events: ReadonlySet<string>;
}

/** What a change calls to have its events written with it (the outbox). */
export interface EventWriter {
  eventWrites(clientId: string, event: WebhookEvent, data: EventData, resource: () => object): Promise<BoundWrite[]>;
}

export class WebhooksRepository implements EventWriter {
  private readonly subscriptionsOf;
  /** The outbox's own statements, in this store's SQL. */
  private readonly sql: Record<keyof typeof OUTBOX_SQL, string>;
  private readonly settleQuery;
  readonly subscriptionPages: KeysetSource<WebhooksTable>;
  readonly deliveryPages: KeysetSource<DeliveryRow>;
  /** Per client, on the embedded store only (see subscriptionsFor). */
  private readonly subscriptionCache: Map<string, Subscription[]> | undefined;
  /** Counts subscription writes begun and ended, so that a read overlapping one is not cached. */
  private subscriptionChanges = 0;

  constructor(
    private readonly db: Db,
    private readonly cipher: PiiCipher,
  ) {
    this.subscriptionsOf = prepare(db, (p: { clientId: string }) =>
      db.selectFrom('webhooks').select(['id', 'name', 'events', 'include_resource']).where('client_id', '=', p.clientId),
    );
    const dialect = embeddedSqliteOf(db) ? 'sqlite' : 'postgres';
    this.sql = Object.fromEntries(Object.entries(OUTBOX_SQL).map(([name, text]) => [name, text[dialect]])) as WebhooksRepository['sql'];
    this.settleQuery = prepare(db, (p: Outcome & { seq: number; lease: string; now: string }) =>
      db
        .updateTable('webhook_deliveries')
        .set({
          status: p.status,
          next_attempt_at: p.next_attempt_at,
          last_status_code: p.last_status_code,
          last_error: p.last_error,
          delivered_at: p.delivered_at,
          lease_until: null,
          updated_at: p.now,
        })
        .where('seq', '=', p.seq)
        .where('lease_until', '=', p.lease),
    );
    this.subscriptionCache = embeddedSqliteOf(db) ? new Map() : undefined;
    const subscriptions = new KeysetQueries(db, 'webhooks', {});
    this.subscriptionPages = { page: (p, l) => subscriptions.page(p, l), hasBeyond: (p) => subscriptions.hasBeyond(p) };
    const deliveries = new KeysetQueries(db, 'webhook_deliveries', { webhook: 'webhook_id' });
    this.deliveryPages = {
      page: async (p, l) => (await deliveries.page(p, l)).map(toDeliveryRow),
      hasBeyond: (p) => deliveries.hasBeyond(p),
    };
  }

  static secretContext(clientId: string, webhookId: string): string {
    return `${clientId}/${webhookId}/webhook-secret`;
  }

  /** A delivery's body, when it carries a resource. */
  static payloadContext(clientId: string, deliveryId: string): string {
    return `${clientId}/${deliveryId}/webhook-payload`;
  }

  /** The resource of an event written before it was kept in clear (still fanned out after an upgrade). */
  static eventContext(clientId: string, userId: string): string {
    return `${clientId}/${userId}/webhook-event`;
  }

  /**
   * The outbox write of `event`: one row naming the client's subscriptions that want it, with the resource as the
   * change wrote it (never re-read later) when one of them asks for it. `resource` must hold no SSN, birth date or
   * address: what is left, the users table keeps in clear too, and the row lives until the next fan-out round, so
   * it is not encrypted here (that cost the request ~15 µs); the delivery that keeps it for days is. Nothing when no
   * subscription wants the event. The dispatcher fans the row out into one delivery per subscription (fanOut).
   */
  async eventWrites(clientId: string, event: WebhookEvent, data: EventData, resource: () => object): Promise<BoundWrite[]> {
    if (!embeddedSqliteOf(this.db)) {
      // PostgreSQL: another instance may change the subscriptions at any moment, so the insert itself finds those
      // that want the event, as the change's statement sees them, instead of a read of its own in the request's
      // turn (a round trip). The resource goes along in case one of them wants it.
      return [rawWrite(this.db, MATCHED_EVENT_SQL, [clientId, data.user, data.account ?? null, event, JSON.stringify(resource()), timestampNow()])];
    }
    const subscriptions = await this.subscriptionsFor(clientId);
    let webhooks = '';
    let withResource = false;
    for (const subscription of subscriptions) {
      if (!subscription.events.has(event) && !subscription.events.has('*')) continue;
      webhooks = webhooks === '' ? subscription.id : `${webhooks},${subscription.id}`;
      withResource ||= subscription.include_resource === 1;
    }
    if (webhooks === '') return [];
    const json = withResource ? JSON.stringify(resource()) : null;
    return [rawWrite(this.db, this.sql.event, [clientId, data.user, data.account ?? null, event, webhooks, json, timestampNow()])];
  }

  /** An event's resource as the change wrote it: JSON, or (rows written before it was kept in clear) its ciphertext. */
  private eventResource(e: EventRow): unknown {
    return JSON.parse(clearOrDecrypted(e.resource!, this.cipher, WebhooksRepository.eventContext(e.client_id, e.user_id)));
  }

  /**
   * Turns up to `limit` events, oldest first, into their deliveries: one per subscription the event names that still
   * exists, its body built from what the change wrote, encrypted at rest when it carries the resource (a body of ids
   * and names alone is kept as it is sent). The events go in the same transaction;
   * when another instance fanned them out meanwhile (PostgreSQL), nothing is written and this returns 0. Returns how
   * many events were fanned out.
   *
   * A user's events are read in commit order, and the events visible to a read always include every earlier event
   * of the same user (its changes commit one after another), so each subscription gets a user's deliveries in order.
   */
  async fanOut(limit: number): Promise<number> {
    const events = await this.oldestEvents(limit);
    if (events.length === 0) return 0;
    const embedded = embeddedSqliteOf(this.db);
    // On SQLite the events read are exactly those up to the last one's seq: a row inserted later gets a larger one.
    const remove = embedded
      ? rawWrite(this.db, this.sql.removeEventsUpTo, [events[events.length - 1]!.seq])
      : rawWrite(this.db, this.sql.removeEvents, [events.map((e) => e.seq)]);
    const writes: BoundWrite[] = [guarded(remove, events.length)];
    // PostgreSQL: the deliveries as one multi-row insert, in this order (one statement instead of one each).
    const columns: string[][] | undefined = embedded ? undefined : [[], [], [], [], [], [], []];
    const subscriptionsOf = new Map<string, Map<string, Subscription>>();
    for (const e of events) {
      let subscriptions = subscriptionsOf.get(e.client_id);
      if (!subscriptions) {
        subscriptions = new Map((await this.subscriptionsFor(e.client_id)).map((s) => [s.id, s]));
        subscriptionsOf.set(e.client_id, subscriptions);
      }
      const data: EventData = e.account_id === null ? { user: e.user_id } : { user: e.user_id, account: e.account_id };
      let resource: unknown;
      for (const webhookId of e.webhooks.split(',')) {
        const subscription = subscriptions.get(webhookId);
        if (!subscription) continue; // deleted since: its deliveries went with it
        const withResource = subscription.include_resource === 1 && e.resource !== null;
        if (withResource) resource ??= this.eventResource(e);
        const { id, createdAt } = newId();
        const body = JSON.stringify({ event: e.event, name: subscription.name, data: withResource ? { ...data, resource } : data });
        const payload = withResource ? this.cipher.encrypt(body, WebhooksRepository.payloadContext(e.client_id, id)) : body;
        const delivery = [e.client_id, id, subscription.id, e.user_id, e.event, payload, createdAt];
        // Written only if the subscription still exists when this commits.
        if (columns) delivery.forEach((value, i) => columns[i]!.push(value));
        else writes.push(rawWrite(this.db, this.sql.insert, [...delivery, createdAt, createdAt, e.client_id, subscription.id]));
      }
    }
    if (columns && columns[0]!.length > 0) writes.push(rawWrite(this.db, INSERT_DELIVERIES_SQL, columns));
    try {
      await runTogether(this.db, writes);
    } catch (error) {
      if (error instanceof WriteConflictError) return 0;
      throw error;
    }
    return events.length;
  }

  private async oldestEvents(limit: number): Promise<EventRow[]> {
    const embedded = embeddedSqliteOf(this.db);
    if (embedded) {
      // Not inside a Kysely transaction of this connection (a bulk import): it could see rows not yet committed.
      if (embedded.connection.inTransaction) return [];
      return embedded.statement(this.sql.events).all(limit) as EventRow[];
    }
    const { rows } = await this.db.executeQuery<EventRow & { seq: unknown }>(CompiledQuery.raw(this.sql.events, [limit]));
    return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
  }

  /**
   * The subscriptions of a client, as events are matched against them. On the embedded store this process is the
   * only one that creates or deletes subscriptions, so they are kept in memory and dropped on every change; on
   * PostgreSQL another instance may change them at any moment, so they are read each time (by the dispatcher; a
   * change's event finds them in its own statement, MATCHED_EVENT_SQL).
   */
  private async subscriptionsFor(clientId: string): Promise<Subscription[]> {
    const cached = this.subscriptionCache?.get(clientId);
    if (cached) return cached;
    const generation = this.subscriptionChanges;
    const rows = await this.subscriptionsOf.all({ clientId });
    const subscriptions = rows.map((row) => ({ id: row.id, name: row.name, include_resource: row.include_resource, events: new Set(JSON.parse(row.events) as string[]) }));
    // Not when a subscription changed while this read was under way: it may have read the state before.
    if (generation === this.subscriptionChanges) this.subscriptionCache?.set(clientId, subscriptions);
    return subscriptions;
  }

  async insertSubscription(row: WebhooksTable): Promise<void> {
    this.subscriptionChanges++;
    await this.db.insertInto('webhooks').values(row).execute();
    this.subscriptionChanges++;
    this.subscriptionCache?.delete(row.client_id);
  }

  allSubscriptions(clientId: string): Promise<WebhooksTable[]> {
    return this.db.selectFrom('webhooks').selectAll().where('client_id', '=', clientId).orderBy('id').execute();
  }

  async latestDeliveries(clientId: string, webhookId: string, limit: number, status?: string): Promise<DeliveryRow[]> {
    let query = this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('client_id', '=', clientId)
      .where('webhook_id', '=', webhookId);
    if (status !== undefined) query = query.where('status', '=', status as DeliveryRow['status']);
    return (await query.orderBy('id', 'desc').limit(limit).execute()).map(toDeliveryRow);
  }

  findSubscription(clientId: string, id: string): Promise<WebhooksTable | undefined> {
    return this.db.selectFrom('webhooks').selectAll().where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst();
  }

  async deleteSubscription(clientId: string, id: string): Promise<boolean> {
    this.subscriptionChanges++;
    const result = await this.db.deleteFrom('webhooks').where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst();
    this.subscriptionChanges++;
    this.subscriptionCache?.delete(clientId);
    return result.numDeletedRows > 0n;
  }

  async findDelivery(clientId: string, webhookId: string, id: string): Promise<DeliveryRow | undefined> {
    const row = await this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('client_id', '=', clientId)
      .where('webhook_id', '=', webhookId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && toDeliveryRow(row);
  }

  /** A failed (or pending) delivery due again now, with a fresh budget of attempts. */
  async retryDelivery(key: Key & { webhookId: string }): Promise<boolean> {
    const now = timestampNow();
    const result = await this.db
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', attempts: 0, next_attempt_at: now, lease_until: null, updated_at: now })
      .where('client_id', '=', key.clientId)
      .where('webhook_id', '=', key.webhookId)
      .where('id', '=', key.id)
      .where('status', '!=', 'delivered')
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Claims up to `limit` deliveries that are due, each the oldest pending one of its (subscription, user), for
   * `leaseMs`: counted as an attempt, invisible to other claimers until the lease ends. On PostgreSQL several
   * instances claim side by side (FOR UPDATE SKIP LOCKED); a crashed claimer's rows return when its lease ends.
   */
  async claimDue(limit: number, leaseMs: number): Promise<DeliveryRow[]> {
    const now = timestampNow();
    const until = isoMicros(nowMicros() + leaseMs * 1000);
    const embedded = embeddedSqliteOf(this.db);
    if (embedded) {
      // Synchronously on the one connection, without waiting for a lock another process holds (a CLI import):
      // the event loop must not stall on a background task; the next poll tries again. A read first: an idle
      // outbox costs one indexed read per poll and never takes the write lock.
      if (embedded.statement(this.sql.due).get(now) === undefined) return [];
      const claimed = embedded.withoutLockWait(() => embedded.statement(this.sql.claim).all(until, now, now, limit));
      return claimed === undefined ? [] : sorted(claimed as ClaimedRow[]);
    }
    if ((await this.db.executeQuery(CompiledQuery.raw(this.sql.due, [now]))).rows.length === 0) return [];
    return sorted((await this.db.executeQuery<ClaimedRow>(CompiledQuery.raw(this.sql.claim, [until, now, now, limit]))).rows);
  }

  /** Whether one process alone delivers (the embedded store), so that leases need not outlive it. */
  get singleDeliverer(): boolean {
    return embeddedSqliteOf(this.db) !== undefined;
  }

  async releaseAllLeases(): Promise<void> {
    await this.db.executeQuery(CompiledQuery.raw("update webhook_deliveries set lease_until = null where status = 'pending' and lease_until is not null"));
  }

  /**
   * Deletes up to `limit` settled (delivered or failed) deliveries created before `before`, oldest first; returns
   * how many. Walks the commit order from its start, where the old rows are, so it needs no index of its own.
   */
  async deleteSettledBefore(before: string, limit: number): Promise<number> {
    const result = await this.db.executeQuery(CompiledQuery.raw(this.sql.prune, [before, limit]));
    return Number(result.numAffectedRows ?? 0n);
  }

  /**
   * Records attempts' outcomes together, each only where this claimer still holds the delivery's lease: one unit of
   * the group commit on SQLite, one multi-row update on PostgreSQL.
   */
  async settleAll(settled: readonly Settled[]): Promise<void> {
    if (settled.length === 0) return;
    const now = timestampNow();
    if (embeddedSqliteOf(this.db)) {
      await runTogether(this.db, settled.map(({ row, outcome }) => this.settleQuery.bind({ ...outcome, seq: row.seq, lease: row.lease_until ?? '', now })));
      return;
    }
    const column = <T>(value: (s: Settled) => T) => settled.map(value);
    await this.db.executeQuery(
      CompiledQuery.raw(SETTLE_ALL_SQL, [
        column((s) => s.row.seq),
        column((s) => s.row.lease_until),
        column((s) => s.outcome.status),
        column((s) => s.outcome.next_attempt_at),
        column((s) => s.outcome.last_status_code),
        column((s) => s.outcome.last_error),
        column((s) => s.outcome.delivered_at),
        now,
      ]),
    );
  }
}

/**
 * How many deliveries are still to be made, due or waiting for a retry (the outbox's depth, for metrics): a count over
 * the partial index of pending rows, whatever the size of the settled history.
 */
export async function countPendingDeliveries(db: Db): Promise<number> {
  const { rows } = await db.executeQuery<{ n: number | string }>(CompiledQuery.raw(PENDING_COUNT_SQL));
  return Number(rows[0]?.n ?? 0);
}

type EventRow = Omit<WebhookEventsTable, 'seq'> & { seq: number };

type ClaimedRow = { seq: unknown } & Omit<WebhookDeliveriesTable, 'seq'>;

const sorted = (rows: ClaimedRow[]) => rows.map(toDeliveryRow).sort((a, b) => a.seq - b.seq);

// The outbox queries, in SQL of their own: `status = 'pending'` is spelled as a literal so that both stores use the
// partial indexes of migration 0005 (neither does for a bound parameter).

/** The n-th parameter of a statement, with its type on PostgreSQL. */
type Parameter = (n: number, type: string) => string;

/** A statement in each store's SQL: `?` on SQLite, `$n::type` on PostgreSQL. */
const inBothStores = (build: (p: Parameter, pg: boolean) => string) => ({
  sqlite: build(() => '?', false),
  postgres: build((n, type) => `$${n}::${type}`, true),
});

const OUTBOX_SQL = {
  /** Whether anything may be due (in flight rows count too: the claim then finds nothing). Parameter: now. */
  due: inBothStores((p) => `select seq from webhook_deliveries where status = 'pending' and next_attempt_at <= ${p(1, 'timestamptz')} limit 1`),
  /**
   * Claims the due deliveries in due order, each the oldest pending one of its (subscription, user), for a lease:
   * counted as an attempt, invisible to other claimers until the lease ends (parameters: lease end, now, now, limit).
   */
  claim: inBothStores(
    (p, pg) => `
  update webhook_deliveries set lease_until = ${p(1, 'timestamptz')}, attempts = attempts + 1
  where seq in (
    select d.seq from webhook_deliveries d
    where d.status = 'pending' and d.next_attempt_at <= ${p(2, 'timestamptz')}
      and (d.lease_until is null or d.lease_until < ${p(3, 'timestamptz')})
      and not exists (
        select 1 from webhook_deliveries e
        where e.status = 'pending' and e.client_id = d.client_id and e.webhook_id = d.webhook_id
          and e.user_id = d.user_id and e.seq < d.seq)
    order by d.next_attempt_at limit ${p(4, 'int')}${pg ? ' for update skip locked' : ''})
  returning *`,
  ),
  /**
   * SQLite: a new delivery, pending and due now, if its subscription exists (parameters: client, id, subscription,
   * user, event, payload, created at three times (due, created, updated), client, subscription).
   */
  insert: inBothStores(
    (p) => `
  insert into webhook_deliveries (client_id, id, webhook_id, user_id, event, payload, status, attempts, next_attempt_at,
    created_at, updated_at)
  select ${p(1, 'uuid')}, ${p(2, 'uuid')}, ${p(3, 'uuid')}, ${p(4, 'uuid')}, ${p(5, 'text')}, ${p(6, 'text')}, 'pending', 0,
    ${p(7, 'timestamptz')}, ${p(8, 'timestamptz')}, ${p(9, 'timestamptz')}
  where exists (select 1 from webhooks where client_id = ${p(10, 'uuid')} and id = ${p(11, 'uuid')})`,
  ),
  /** A change's event (parameters: client, user, account, event, subscriptions, resource JSON, created at). */
  event: inBothStores(
    (p) => `
  insert into webhook_events (client_id, user_id, account_id, event, webhooks, resource, created_at)
  values (${p(1, 'uuid')}, ${p(2, 'uuid')}, ${p(3, 'uuid')}, ${p(4, 'text')}, ${p(5, 'text')}, ${p(6, 'text')}, ${p(7, 'timestamptz')})`,
  ),
  /** The oldest events not yet fanned out (parameter: limit). */
  events: inBothStores(
    (p) => `select seq, client_id, user_id, account_id, event, webhooks, resource, created_at from webhook_events order by seq limit ${p(1, 'int')}`,
  ),
  /** SQLite: the events up to a seq (parameter: seq). */
  removeEventsUpTo: inBothStores((p) => `delete from webhook_events where seq <= ${p(1, 'bigint')}`),
  /** PostgreSQL: the events of these seqs (parameter: an array of them). */
  removeEvents: inBothStores((p) => `delete from webhook_events where seq = any(${p(1, 'bigint[]')})`),
  /** Settled deliveries created before a time, oldest first (parameters: before, limit). */
  prune: inBothStores(
    (p) => `
  delete from webhook_deliveries where seq in (
    select seq from webhook_deliveries where status <> 'pending' and created_at < ${p(1, 'timestamptz')} order by seq limit ${p(2, 'int')})`,
  ),
};

/**
 * PostgreSQL: attempts' outcomes, each where its claimer still holds the lease (parameters: one array per column:
 * seqs, leases, statuses, next attempts, status codes, errors, delivered ats; then now).
 */
const SETTLE_ALL_SQL = `
  update webhook_deliveries d set status = o.status, next_attempt_at = o.next_attempt_at, last_status_code = o.last_status_code,
    last_error = o.last_error, delivered_at = o.delivered_at, lease_until = null, updated_at = $8::timestamptz
  from unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::int[], $6::text[], $7::timestamptz[])
    as o(seq, lease, status, next_attempt_at, last_status_code, last_error, delivered_at)
  where d.seq = o.seq and d.lease_until = o.lease`;

/**
 * PostgreSQL: new deliveries, pending and due when created, each if its subscription exists, their seqs in the order
 * given (parameters: one array per column: clients, ids, subscriptions, users, events, payloads, created ats).
 */
const INSERT_DELIVERIES_SQL = `
  insert into webhook_deliveries (client_id, id, webhook_id, user_id, event, payload, status, attempts, next_attempt_at,
    created_at, updated_at)
  select d.client_id, d.id, d.webhook_id, d.user_id, d.event, d.payload, 'pending', 0, d.created_at, d.created_at, d.created_at
  from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::timestamptz[])
    with ordinality as d(client_id, id, webhook_id, user_id, event, payload, created_at, n)
  where exists (select 1 from webhooks w where w.client_id = d.client_id and w.id = d.webhook_id)
  order by d.n`;

/**
 * PostgreSQL: a change's event, naming the client's subscriptions that want it as the statement sees them, with the
 * resource kept only when one of them asks for it; no row when none wants the event (parameters: client, user,
 * account, event, resource JSON, created at). `events` is a jsonb array of names.
 */
const MATCHED_EVENT_SQL = `
  insert into webhook_events (client_id, user_id, account_id, event, webhooks, resource, created_at)
  select $1::uuid, $2::uuid, $3::uuid, $4::text, string_agg(id::text, ','), case when bool_or(include_resource = 1) then $5::text end,
    $6::timestamptz
  from webhooks where client_id = $1::uuid and events ?| array[$4::text, '*']
  having count(*) > 0`;

/** The same text in both stores (events not yet fanned out count too); PostgreSQL's count is a bigint, returned as text. */
const PENDING_COUNT_SQL =
  "select (select count(*) from webhook_deliveries where status = 'pending') + (select count(*) from webhook_events) as n";

/** Stored JSON as it is, or the JSON a PII ciphertext holds (a ciphertext never starts with `{`). */
export function clearOrDecrypted(stored: string, cipher: PiiCipher, context: string): string {
  return stored.startsWith('{') ? stored : cipher.decrypt(stored, context);
}

/** PostgreSQL returns bigserial as text. */
function toDeliveryRow(row: { seq: unknown } & Omit<WebhookDeliveriesTable, 'seq'>): DeliveryRow {
  return { ...row, seq: Number(row.seq) };
}
