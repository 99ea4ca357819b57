// The Database interface (table row types) and opening a store from DATABASE_URL.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';

export interface ClientsTable {
  id: string;
  name: string;
  created_at: string;
}

export interface ApiKeysTable {
  id: string;
  client_id: string;
  name: string;
  secret_hash: string;
  created_at: string;
  revoked_at: string | null;
}

export interface UsersTable {
  client_id: string;
  id: string;
  created_at: string;
  updated_at: string;
  version: number;
  external_id: string | null;
  first_name: string | null;
  last_name: string | null;
  email: string | null;
  phone_number: string | null;
  ssn: string | null;
  address_city: string | null;
  address_line1: string | null;
  address_line2: string | null;
  address_state: string | null;
  address_country: string | null;
  address_postal_code: string | null;
  birth_year: number | null;
  birth_month: number | null;
  birth_day: number | null;
  /** JSON text; NULL when the value is JSON null. */
  external_metadata: string | null;
  /** JSON text of the open_banking object; NULL when unset. */
  open_banking: string | null;
  /** JSON text arrays. */
  items_connected: string;
  employers_connected: string;
}

export interface Database {
  clients: ClientsTable;
  api_keys: ApiKeysTable;
  users: UsersTable;
}

export type Db = Kysely<Database>;

export function sqlitePath(databaseUrl: string): string {
  return databaseUrl.replace(/^sqlite:(\/\/)?/, '');
}

export function openDatabase(databaseUrl: string): Db {
  const path = sqlitePath(databaseUrl);
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // The database holds personal data: owner-only, and SQLite gives its -wal/-shm files the same mode.
    if (!existsSync(path)) writeFileSync(path, '', { mode: 0o600 });
  }
  const sqlite = new SQLite(path);
  sqlite.pragma('journal_mode = WAL');
  // FULL: a transaction acknowledged to a client survives power loss, not just a process crash.
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
}
