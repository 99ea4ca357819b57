// One migration history for every store; ids and timestamps come from the application.
import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import type { Database } from './database.js';

const migrations: Record<string, Migration> = {
  '0001_tenants_keys_users': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('clients')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('users')
        .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id').onDelete('cascade'))
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('external_id', 'text')
        .addColumn('first_name', 'text')
        .addColumn('last_name', 'text')
        .addColumn('email', 'text')
        .addColumn('phone_number', 'text')
        .addColumn('ssn', 'text')
        .addColumn('address_city', 'text')
        .addColumn('address_line1', 'text')
        .addColumn('address_line2', 'text')
        .addColumn('address_state', 'text')
        .addColumn('address_country', 'text')
        .addColumn('address_postal_code', 'text')
        .addColumn('birth_year', 'integer')
        .addColumn('birth_month', 'integer')
        .addColumn('birth_day', 'integer')
        .addColumn('external_metadata', 'text')
        .addColumn('open_banking', 'text')
        .addColumn('items_connected', 'text', (c) => c.notNull())
        .addColumn('employers_connected', 'text', (c) => c.notNull())
        // (client_id, id) serves both lookup by id and listing in id (= creation) order.
        .addPrimaryKeyConstraint('users_pkey', ['client_id', 'id'])
        .execute();
      await db.schema
        .createIndex('users_client_external_id_idx')
        .on('users')
        .columns(['client_id', 'external_id', 'id'])
        .execute();
      await db.schema.createIndex('api_keys_client_idx').on('api_keys').column('client_id').execute();
    },
  },
};

export async function migrateToLatest(db: Kysely<Database>): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db: db as Kysely<unknown>, provider: { getMigrations: async () => migrations } });
  const result = await migrator.migrateToLatest();
  if (result.error) throw result.error;
  return result;
}
