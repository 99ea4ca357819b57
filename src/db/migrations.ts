// One migration history for every store; ids and timestamps come from the application.
import { Migrator, sql, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import { dialectOf, type Database } from './database.js';

/** Column types per dialect: SQLite stores text; PostgreSQL gets native types where they matter. */
function columnTypes(db: Kysely<unknown>) {
  const pg = dialectOf(db) === 'postgres';
  return {
    uuid: pg ? 'uuid' : 'text',
    timestamp: pg ? 'timestamptz' : 'text',
    // external_metadata must read back exactly as written, key order included: json keeps the text, jsonb does not.
    exactJson: pg ? 'json' : 'text',
    json: pg ? 'jsonb' : 'text',
  } as const;
}

const migrations: Record<string, Migration> = {
  '0001_tenants_keys_users': {
    async up(db: Kysely<unknown>) {
      const t = columnTypes(db);
      await db.schema
        .createTable('clients')
        .addColumn('id', t.uuid, (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', t.timestamp, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('client_id', t.uuid, (c) => c.notNull().references('clients.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', t.timestamp, (c) => c.notNull())
        .addColumn('revoked_at', t.timestamp)
        .execute();
      await db.schema
        .createTable('users')
        .addColumn('client_id', t.uuid, (c) => c.notNull().references('clients.id').onDelete('cascade'))
        .addColumn('id', t.uuid, (c) => c.notNull())
        .addColumn('created_at', t.timestamp, (c) => c.notNull())
        .addColumn('updated_at', t.timestamp, (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('external_id', 'text')
        .addColumn('first_name', 'text')
        .addColumn('last_name', 'text')
        .addColumn('email', 'text')
        .addColumn('phone_number', 'text')
        .addColumn('pii', 'text')
        .addColumn('address_city', 'text')
        .addColumn('address_line1', 'text')
        .addColumn('address_line2', 'text')
        .addColumn('address_state', 'text')
        .addColumn('address_country', 'text')
        .addColumn('address_postal_code', 'text')
        .addColumn('external_metadata', t.exactJson)
        .addColumn('open_banking', t.json)
        .addColumn('items_connected', t.json, (c) => c.notNull())
        .addColumn('employers_connected', t.json, (c) => c.notNull())
        // (client_id, id) serves both lookup by id and listing in id (= creation) order.
        .addPrimaryKeyConstraint('users_pkey', ['client_id', 'id'])
        .execute();
      await db.schema
        .createIndex('users_client_external_id_idx')
        .on('users')
        .columns(['client_id', 'external_id', 'id'])
        .execute();
      await db.schema.createIndex('api_keys_client_idx').on('api_keys').column('client_id').execute();
      await db.schema
        .createTable('idempotency_keys')
        .addColumn('client_id', t.uuid, (c) => c.notNull().references('clients.id').onDelete('cascade'))
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('request_hash', 'text', (c) => c.notNull())
        .addColumn('status_code', 'integer')
        .addColumn('response_body', 'text')
        .addColumn('created_at', t.timestamp, (c) => c.notNull())
        .addPrimaryKeyConstraint('idempotency_keys_pkey', ['client_id', 'key'])
        .execute();
      await db.schema.createIndex('idempotency_keys_created_idx').on('idempotency_keys').column('created_at').execute();
    },
  },
  '0002_instances': {
    // A heartbeat row per serving instance: which PII keys it holds, so `pii rotate` can check every live one.
    async up(db: Kysely<unknown>) {
      const t = columnTypes(db);
      await db.schema
        .createTable('instances')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('pii_key_ids', t.json, (c) => c.notNull())
        .addColumn('started_at', t.timestamp, (c) => c.notNull())
        .addColumn('expires_at', t.timestamp, (c) => c.notNull())
        .execute();
    },
  },
  '0003_accounts': {
    // A user's payroll connections. Deleting the user deletes them in the same statement (ON DELETE CASCADE).
    async up(db: Kysely<unknown>) {
      const t = columnTypes(db);
      await db.schema
        .createTable('accounts')
        .addColumn('client_id', t.uuid, (c) => c.notNull())
        .addColumn('id', t.uuid, (c) => c.notNull())
        .addColumn('user_id', t.uuid, (c) => c.notNull())
        .addColumn('item', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('employers', t.json, (c) => c.notNull())
        .addColumn('created_at', t.timestamp, (c) => c.notNull())
        .addColumn('updated_at', t.timestamp, (c) => c.notNull())
        .addColumn('scanned_at', t.timestamp)
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('error_code', 'text')
        .addColumn('error_message', 'text')
        .addColumn('connection_updated_at', t.timestamp, (c) => c.notNull())
        // When the account first connected: the order of items_connected and employers_connected.
        .addColumn('connected_at', t.timestamp)
        .addColumn('version', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('accounts_pkey', ['client_id', 'id'])
        .addForeignKeyConstraint('accounts_user_fkey', ['client_id', 'user_id'], 'users', ['client_id', 'id'], (fk) =>
          fk.onDelete('cascade'),
        )
        .addUniqueConstraint('accounts_user_item_key', ['client_id', 'user_id', 'item'])
        .execute();
      // Listing a user's accounts in id order (and the cascade from users); listing by item.
      await db.schema.createIndex('accounts_client_user_idx').on('accounts').columns(['client_id', 'user_id', 'id']).execute();
      await db.schema.createIndex('accounts_client_item_idx').on('accounts').columns(['client_id', 'item', 'id']).execute();
    },
  },
  '0004_webhooks': {
    // Subscriptions, and the outbox: one delivery row per (event, subscription), written in the change's transaction.
    async up(db: Kysely<unknown>) {
      const t = columnTypes(db);
      const pg = dialectOf(db) === 'postgres';
      await db.schema
        .createTable('webhooks')
        .addColumn('client_id', t.uuid, (c) => c.notNull().references('clients.id').onDelete('cascade'))
        .addColumn('id', t.uuid, (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('events', t.json, (c) => c.notNull())
        .addColumn('secret', 'text')
        .addColumn('include_resource', 'integer', (c) => c.notNull())
        .addColumn('created_at', t.timestamp, (c) => c.notNull())
        .addPrimaryKeyConstraint('webhooks_pkey', ['client_id', 'id'])
        .execute();
      await db.schema
        .createTable('webhook_deliveries')
        // The commit order of events: a user's events reach a subscription in this order.
        .addColumn('seq', pg ? 'bigserial' : 'integer', (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('client_id', t.uuid, (c) => c.notNull())
        .addColumn('id', t.uuid, (c) => c.notNull())
        .addColumn('webhook_id', t.uuid, (c) => c.notNull())
        .addColumn('user_id', t.uuid, (c) => c.notNull())
        .addColumn('event', 'text', (c) => c.notNull())
        /** The body to send, encrypted (it may hold the user's name and email). */
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', t.timestamp, (c) => c.notNull())
        .addColumn('lease_until', t.timestamp)
        .addColumn('last_status_code', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('created_at', t.timestamp, (c) => c.notNull())
        .addColumn('updated_at', t.timestamp, (c) => c.notNull())
        .addColumn('delivered_at', t.timestamp)
        .addUniqueConstraint('webhook_deliveries_id_key', ['client_id', 'id'])
        .addForeignKeyConstraint('webhook_deliveries_webhook_fkey', ['client_id', 'webhook_id'], 'webhooks', ['client_id', 'id'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();
      await db.schema.createIndex('webhook_deliveries_due_idx').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
      await db.schema
        .createIndex('webhook_deliveries_order_idx')
        .on('webhook_deliveries')
        .columns(['client_id', 'webhook_id', 'user_id', 'seq'])
        .execute();
      await db.schema.createIndex('webhook_deliveries_list_idx').on('webhook_deliveries').columns(['client_id', 'webhook_id', 'id']).execute();
    },
  },
  '0005_webhook_pending_indexes': {
    // The outbox's working indexes hold the pending deliveries only: a delivered or failed row leaves them, so a
    // claim walks the due rows in due order and stops at its limit, however many have been delivered before.
    // The queries that use them spell `status = 'pending'` as a literal: neither store uses a partial index for a
    // bound parameter.
    async up(db: Kysely<unknown>) {
      await db.schema.dropIndex('webhook_deliveries_due_idx').execute();
      await db.schema.dropIndex('webhook_deliveries_order_idx').execute();
      await sql`create index webhook_deliveries_pending_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending'`.execute(db);
      await sql`create index webhook_deliveries_pending_order_idx on webhook_deliveries (client_id, webhook_id, user_id, seq) where status = 'pending'`.execute(db);
    },
  },
  '0006_webhook_events': {
    // The outbox's first stage: one row per event, written in the change's transaction, with no index beyond its
    // commit order. The dispatcher fans each out into deliveries (one per subscription it names) and deletes it, so
    // a change pays for one small append, not for a delivery row in five b-trees per subscription.
    async up(db: Kysely<unknown>) {
      const t = columnTypes(db);
      const pg = dialectOf(db) === 'postgres';
      await db.schema
        .createTable('webhook_events')
        // Commit order per user, as deliveries' seq was: a user's events are fanned out in this order.
        .addColumn('seq', pg ? 'bigserial' : 'integer', (c) => c.primaryKey())
        .addColumn('client_id', t.uuid, (c) => c.notNull())
        .addColumn('user_id', t.uuid, (c) => c.notNull())
        .addColumn('account_id', t.uuid)
        .addColumn('event', 'text', (c) => c.notNull())
        /** The subscriptions the change found wanting the event, comma-separated ids. */
        .addColumn('webhooks', 'text', (c) => c.notNull())
        /** The object as the API returned it (no SSN, birth date or address), encrypted; only when one of them wants it. */
        .addColumn('resource', 'text')
        .addColumn('created_at', t.timestamp, (c) => c.notNull())
        .execute();
    },
  },
};

/** Every migration this build knows, in order: a store that has applied others was made by a newer build. */
export const MIGRATION_NAMES: readonly string[] = Object.keys(migrations);

export async function migrateToLatest(db: Kysely<Database>): Promise<MigrationResultSet> {
  // Kysely looks for its bookkeeping tables across all schemas unless told which one is ours.
  const schema =
    dialectOf(db) === 'postgres'
      ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema
      : undefined;
  const migrator = new Migrator({
    db: db as Kysely<unknown>,
    provider: { getMigrations: async () => migrations },
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const result = await migrator.migrateToLatest();
  if (result.error) throw result.error;
  return result;
}
