// Subscriptions and deliveries in the store, and the outbox: the delivery rows of an event, bound to be written
// in the same transaction as the change that caused it.
import { sql } from 'kysely';
import { isoMicros, nowMicros, timestampNow } from '../clock.js';
import { embeddedSqliteOf, type Db, type WebhookDeliveriesTable, type WebhooksTable } from '../db/database.js';
import { prepare, type BoundWrite } from '../db/prepared.js';
import { KeysetQueries, type KeysetSource } from '../paging/keyset.js';
import type { PiiCipher } from '../pii/pii.cipher.js';
import { newId } from '../users/users.ids.js';
import type { WebhookEvent } from './webhooks.events.js';

export type DeliveryRow = Omit<WebhookDeliveriesTable, 'seq'> & { seq: number };

type Key = { clientId: string; id: string };

/** What an attempt settles. */
type Outcome = Pick<WebhookDeliveriesTable, 'status' | 'next_attempt_at' | 'last_status_code' | 'last_error' | 'delivered_at'>;

const DELIVERY_COLUMNS = [
  'client_id',
  'id',
  'webhook_id',
  'user_id',
  'event',
  'payload',
  'status',
  'attempts',
  'next_attempt_at',
  'lease_until',
  'last_status_code',
  'last_error',
  'created_at',
  'updated_at',
  'delivered_at',
] as const satisfies ReadonlyArray<keyof WebhookDeliveriesTable>;

/** The event body: the real service's shape. */
export interface EventData {
  user: string;
  account?: string;
}

/** What a change calls to have its events written with it (the outbox). */
export interface EventWriter {
  eventWrites(clientId: string, event: WebhookEvent, data: EventData, resource: () => object): Promise<BoundWrite[]>;
}

export class WebhooksRepository implements EventWriter {
  private readonly subscriptionsOf;
  private readonly insertDelivery;
  private readonly settleQuery;
  readonly subscriptionPages: KeysetSource<WebhooksTable>;
  readonly deliveryPages: KeysetSource<DeliveryRow>;

  constructor(
    private readonly db: Db,
    private readonly cipher: PiiCipher,
  ) {
    this.subscriptionsOf = prepare(db, (p: { clientId: string }) =>
      db.selectFrom('webhooks').select(['id', 'name', 'events', 'include_resource']).where('client_id', '=', p.clientId),
    );
    this.insertDelivery = prepare(db, (p: Omit<WebhookDeliveriesTable, 'seq'>) =>
      db.insertInto('webhook_deliveries').values(Object.fromEntries(DELIVERY_COLUMNS.map((c) => [c, p[c]])) as unknown as Omit<WebhookDeliveriesTable, 'seq'>),
    );
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

  static payloadContext(clientId: string, deliveryId: string): string {
    return `${clientId}/${deliveryId}/webhook-payload`;
  }

  /**
   * The outbox writes of `event`: one delivery per subscription of the client that wants it, its body built now
   * from what the change wrote (never re-read later), encrypted at rest. `resource` goes only to subscriptions
   * with include_resource, and must hold no SSN, birth date or address.
   */
  async eventWrites(clientId: string, event: WebhookEvent, data: EventData, resource: () => object): Promise<BoundWrite[]> {
    const subscriptions = await this.subscriptionsOf.all({ clientId });
    const writes: BoundWrite[] = [];
    for (const subscription of subscriptions) {
      const events = JSON.parse(subscription.events) as string[];
      if (!events.includes(event) && !events.includes('*')) continue;
      const { id, createdAt } = newId();
      const body = JSON.stringify({
        event,
        name: subscription.name,
        data: subscription.include_resource ? { ...data, resource: resource() } : data,
      });
      writes.push(
        this.insertDelivery.bind({
          client_id: clientId,
          id,
          webhook_id: subscription.id,
          user_id: data.user,
          event,
          payload: this.cipher.encrypt(body, WebhooksRepository.payloadContext(clientId, id)),
          status: 'pending',
          attempts: 0,
          next_attempt_at: createdAt,
          lease_until: null,
          last_status_code: null,
          last_error: null,
          created_at: createdAt,
          updated_at: createdAt,
          delivered_at: null,
        }),
      );
    }
    return writes;
  }

  async insertSubscription(row: WebhooksTable): Promise<void> {
    await this.db.insertInto('webhooks').values(row).execute();
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
    const result = await this.db.deleteFrom('webhooks').where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst();
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
    // A read first: an idle outbox costs one indexed read per poll and never takes the write lock.
    const due = await this.db
      .selectFrom('webhook_deliveries')
      .select('seq')
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .limit(1)
      .executeTakeFirst();
    if (!due) return [];
    const embedded = embeddedSqliteOf(this.db);
    const claim = sql<{ seq: unknown } & Omit<WebhookDeliveriesTable, 'seq'>>`
      update webhook_deliveries set lease_until = ${until}, attempts = attempts + 1
      where seq in (
        select d.seq from webhook_deliveries d
        where d.status = 'pending' and d.next_attempt_at <= ${now} and (d.lease_until is null or d.lease_until < ${now})
          and not exists (
            select 1 from webhook_deliveries e
            where e.client_id = d.client_id and e.webhook_id = d.webhook_id and e.user_id = d.user_id
              and e.status = 'pending' and e.seq < d.seq)
        order by d.seq limit ${limit}
        ${embedded ? sql`` : sql`for update skip locked`})
      returning *`;
    let rows: Array<{ seq: unknown } & Omit<WebhookDeliveriesTable, 'seq'>>;
    if (embedded) {
      // Synchronously on the one connection, without waiting for a lock another process holds (a CLI import):
      // the event loop must not stall on a background task; the next poll tries again.
      const compiled = claim.compile(this.db);
      const claimed = embedded.withoutLockWait(() => embedded.connection.prepare(compiled.sql).all(...compiled.parameters));
      if (claimed === undefined) return [];
      rows = claimed as typeof rows;
    } else {
      rows = (await claim.execute(this.db)).rows;
    }
    return rows.map(toDeliveryRow).sort((a, b) => a.seq - b.seq);
  }

  /** Whether one process alone delivers (the embedded store), so that leases need not outlive it. */
  get singleDeliverer(): boolean {
    return embeddedSqliteOf(this.db) !== undefined;
  }

  async releaseAllLeases(): Promise<void> {
    await this.db.updateTable('webhook_deliveries').set({ lease_until: null }).where('lease_until', 'is not', null).execute();
  }

  /** Records an attempt's outcome, if this claimer still holds the lease. */
  async settle(row: DeliveryRow, outcome: Outcome): Promise<void> {
    // Prepared: on SQLite the outcomes of a round share one group commit (one fsync), not one transaction each.
    await this.settleQuery.run({ ...outcome, seq: row.seq, lease: row.lease_until ?? '', now: timestampNow() });
  }
}

/** PostgreSQL returns bigserial as text. */
function toDeliveryRow(row: { seq: unknown } & Omit<WebhookDeliveriesTable, 'seq'>): DeliveryRow {
  return { ...row, seq: Number(row.seq) };
}
