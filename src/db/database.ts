// The Database interface (table row types) and opening a store from DATABASE_URL.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import {
  Kysely,
  PostgresAdapter,
  PostgresDialect,
  sql,
  SqliteDialect,
  type Generated,
  type PostgresPool,
  type PostgresPoolClient,
  type SqliteStatement,
} from 'kysely';
import { createRequire } from 'node:module';
import type PgModule from 'pg';
import type { DatabaseConfig } from '../config.js';
import { OperatorError } from '../errors.js';
import { GroupCommit } from './group-commit.js';
import type { DbObserver, ObserveStatement } from './observer.js';
import { WalScrubber } from './wal-scrub.js';

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
  /** PII ciphertext (see src/pii) of the JSON {ssn, birth_date}; NULL when none is set. One decryption per row. */
  pii: string | null;
  address_city: string | null;
  address_line1: string | null;
  address_line2: string | null;
  address_state: string | null;
  address_country: string | null;
  address_postal_code: string | null;
  /** JSON text; NULL when the value is JSON null. */
  external_metadata: string | null;
  /** JSON text of the open_banking object; NULL when unset. */
  open_banking: string | null;
  /** JSON text arrays. */
  items_connected: string;
  employers_connected: string;
}

export interface IdempotencyKeysTable {
  client_id: string;
  key: string;
  /** Method and route the key was first used with. */
  scope: string;
  /** SHA-256 of the request body, hex. */
  request_hash: string;
  /** NULL while the first request is still running. */
  status_code: number | null;
  /** PII ciphertext of the response body (it may hold a user token). */
  response_body: string | null;
  created_at: string;
}

export type ConnectionStatus = 'connecting' | 'connected' | 'error';

/** A user's payroll connection (see src/accounts). */
export interface AccountsTable {
  client_id: string;
  id: string;
  user_id: string;
  item: string;
  source: string;
  /** JSON text array of employer names. */
  employers: string;
  created_at: string;
  updated_at: string;
  scanned_at: string | null;
  status: ConnectionStatus;
  error_code: string | null;
  error_message: string | null;
  connection_updated_at: string;
  connected_at: string | null;
  version: number;
}

export interface WebhooksTable {
  client_id: string;
  id: string;
  name: string;
  url: string;
  /** JSON text array of event names (or "*"). */
  events: string;
  /** PII ciphertext of the signing secret; NULL when the subscription has none. */
  secret: string | null;
  include_resource: number;
  created_at: string;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface WebhookDeliveriesTable {
  /** Assigned by the store at insert (commit order per user); the API shows `id`. */
  seq: Generated<number>;
  client_id: string;
  id: string;
  webhook_id: string;
  user_id: string;
  event: string;
  /**
   * The body as sent: the JSON itself when it holds ids and names only, PII ciphertext of it when it carries the
   * resource (kept for WEBHOOK_RETENTION_DAYS, past the user's removal). A ciphertext never starts with `{`.
   */
  payload: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string;
  lease_until: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  delivered_at: string | null;
}

/** An event not yet fanned out into its deliveries (see WebhooksRepository.fanOut). */
export interface WebhookEventsTable {
  seq: Generated<number>;
  client_id: string;
  user_id: string;
  account_id: string | null;
  event: string;
  /** Comma-separated ids of the subscriptions that wanted it when the change was made. */
  webhooks: string;
  /**
   * The resource's JSON (no SSN, birth date or address: the fields the users table keeps in clear), or NULL when no
   * subscription wanted it; rows written before 2026-12-02 hold PII ciphertext of it instead (`v1.…`).
   */
  resource: string | null;
  created_at: string;
}

/** One serving instance, kept alive by its heartbeat (see src/instances.ts). */
export interface InstancesTable {
  id: string;
  /** host:pid, for messages. */
  label: string;
  /** JSON text array of the PII key ids the instance can decrypt with. */
  pii_key_ids: string;
  started_at: string;
  /** Past this, the instance is presumed gone (it stopped beating). */
  expires_at: string;
}

export interface Database {
  instances: InstancesTable;
  clients: ClientsTable;
  api_keys: ApiKeysTable;
  users: UsersTable;
  accounts: AccountsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_events: WebhookEventsTable;
  idempotency_keys: IdempotencyKeysTable;
}

export type Db = Kysely<Database>;

/** How long a write waits for the lock another process (a CLI command) holds on the same file before it fails. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

function openSqlite({ path, synchronous = 'full' }: Extract<DatabaseConfig, { kind: 'sqlite' }>, observer: DbObserver): Db {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // The database holds personal data: owner-only, and SQLite gives its -wal/-shm files the same mode.
    if (!existsSync(path)) writeFileSync(path, '', { mode: 0o600 });
  }
  const sqlite = new SQLite(path);
  sqlite.pragma('journal_mode = WAL');
  // FULL: a transaction acknowledged to a client survives power loss; NORMAL (in WAL mode): a process crash.
  sqlite.pragma(`synchronous = ${synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
  sqlite.pragma('foreign_keys = ON');
  // Deleted users' personal data is overwritten, not left behind in free pages.
  sqlite.pragma('secure_delete = ON');
  sqlite.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  const embedded = new EmbeddedSqlite(sqlite, observer);
  const { statement: observe } = observer;
  const prepare = observe ? (text: string) => observed(embedded.statement(text), observe) : (text: string) => embedded.statement(text);
  const database = { close: () => embedded.close(), prepare };
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  embeddedStores.set(db, embedded);
  return db;
}

/** A statement as Kysely runs it, each run seen by the observer (tracing). */
function observed(statement: SQLite.Statement, observe: ObserveStatement): SqliteStatement {
  return {
    reader: statement.reader,
    all: (parameters) => observe(statement.source, () => statement.all(parameters)),
    run: (parameters) => observe(statement.source, () => statement.run(parameters)),
    iterate: (parameters) => statement.iterate(parameters),
  };
}

/**
 * The embedded store's one connection: a cache of prepared statements (Kysely prepares every query anew,
 * and the service issues a handful of distinct SQL texts), group commit for the writes of prepared queries, and
 * the WAL scrub that follows deletes and updates.
 */
export class EmbeddedSqlite {
  private readonly statements = new Map<string, SQLite.Statement>();
  readonly writes: GroupCommit;
  readonly wal: WalScrubber;

  constructor(
    readonly connection: SQLite.Database,
    /** What tracing and metrics see of this store ({} when neither is on). */
    readonly observer: DbObserver = {},
  ) {
    this.writes = new GroupCommit(connection, observer);
    this.wal = new WalScrubber(connection);
  }

  statement(text: string): SQLite.Statement {
    let statement = this.statements.get(text);
    if (statement === undefined) {
      statement = this.connection.prepare(text);
      if (this.statements.size < 500) this.statements.set(text, statement);
    }
    return statement;
  }

  /**
   * Runs `work` (synchronous) without waiting on a lock another process holds: undefined when the store is busy,
   * or when a transaction of this connection is open (`work` would join it). For background work only.
   */
  withoutLockWait<T>(work: () => T): T | undefined {
    if (this.connection.inTransaction) return undefined;
    const busyTimeout = this.connection.pragma('busy_timeout', { simple: true }) as number;
    this.connection.pragma('busy_timeout = 0');
    try {
      return work();
    } catch (error) {
      if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) return undefined;
      throw error;
    } finally {
      this.connection.pragma(`busy_timeout = ${busyTimeout}`);
    }
  }

  close(): void {
    this.writes.flush();
    this.wal.flush();
    this.connection.close();
  }
}

const embeddedStores = new WeakMap<Db, EmbeddedSqlite>();

/** The embedded SQLite connection behind `db`, or undefined for PostgreSQL (and inside Kysely transactions). */
export const embeddedSqliteOf = (db: Db): EmbeddedSqlite | undefined => embeddedStores.get(db);

/**
 * A stored time in the API's form, ISO 8601 UTC with microseconds (2023-03-08T17:04:23.345612Z), from either store's
 * text: PostgreSQL's timestamptz (session TimeZone=UTC) or SQLite's, which is what was written (toISOString's
 * milliseconds for times the application did not make in the API's form).
 */
export function storedTimeToIso(text: string): string {
  const match = /^(\d{4,}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(?:\+00|Z)$/.exec(text);
  if (!match) return new Date(text).toISOString().replace(/Z$/, '000Z');
  return `${match[1]}T${match[2]}.${(match[3] ?? '').padEnd(6, '0')}Z`;
}

// pg is loaded only when a PostgreSQL store is opened: the embedded default starts faster without it.
let pgModule: typeof PgModule | undefined;
const loadPg = (): typeof PgModule => (pgModule ??= createRequire(import.meta.url)('pg') as typeof PgModule);

const PG_OID = { json: 114, jsonb: 3802, timestamptz: 1184 } as const;

/** Column values come back in the same forms as from SQLite: JSON as text, timestamps as ISO strings. */
const pgTypes = {
  getTypeParser(oid: number, format?: string) {
    if (oid === PG_OID.json || oid === PG_OID.jsonb) return (text: string) => text;
    if (oid === PG_OID.timestamptz) return storedTimeToIso;
    return loadPg().types.getTypeParser(oid, format as 'text');
  },
};

/** Server errors that mean it cannot serve now: connection exceptions, out of resources, shutting down, statement timeout. */
const UNAVAILABLE_SQLSTATE = /^(?:08|53|57P0|57014$)/;

const didNotAnswer = (error: unknown) =>
  new DatabaseUnavailableError(`the database did not answer (${(error as Error).message})`, { cause: error });

/**
 * Names for the statements a process runs again and again, so that each connection parses and plans them once (a
 * named prepared statement: PostgreSQL then reuses the plan) instead of on every execution, which for a create's
 * one-statement insert cost more than the insert. A text is named the second time it is seen, and only the first
 * MAX_NAMED such texts are (the service runs about a hundred): a text built anew per request (a list of ids)
 * cannot fill each connection's memory on the server with prepared statements.
 */
export class StatementNames {
  static readonly MAX_NAMED = 256;
  /** Texts seen once, not yet named; forgotten when it holds this many. */
  static readonly MAX_SEEN = 4096;
  private readonly names = new Map<string, string>();
  private readonly seen = new Set<string>();

  /** The name to prepare `text` under, or undefined to run it unprepared. */
  nameOf(text: string, parameters: readonly unknown[]): string | undefined {
    const name = this.names.get(text);
    if (name !== undefined || parameters.length === 0 || this.names.size >= StatementNames.MAX_NAMED) return name;
    if (!this.seen.has(text)) {
      if (this.seen.size >= StatementNames.MAX_SEEN) this.seen.clear();
      this.seen.add(text);
      return undefined;
    }
    this.seen.delete(text);
    const named = `users_api_${this.names.size}`;
    this.names.set(text, named);
    return named;
  }

  get size(): number {
    return this.names.size;
  }
}

/**
 * A prepared statement whose result's columns changed under it (a migration of another instance added a column to
 * a table it selects all of): PostgreSQL refuses to run it again on that connection.
 */
const isStalePlan = (error: { code?: string; routine?: string; message: string }) =>
  error.code === '0A000' && (error.routine === 'RevalidateCachedQuery' || /cached plan must not change result type/.test(error.message));

/**
 * The pool Kysely runs on, bounded on the client side. node-postgres keeps a connection whose query timed out waiting
 * for the late answer, and Kysely would release it into the pool to be handed out again: here any failure that is not
 * the server's own answer to a statement marks the connection lost, its later queries fail at once (a transaction's
 * ROLLBACK, say) and its release discards it. Failures that mean the database is not answering become
 * DatabaseUnavailableError; the server's answers (a constraint, a syntax error) pass through as they are.
 */
function boundedPool(pool: PgModule.Pool, closeGraceMs: number, observer: DbObserver, names: StatementNames | undefined): PostgresPool {
  const { DatabaseError } = loadPg();
  const asUnavailable = (error: unknown) =>
    error instanceof DatabaseError && !UNAVAILABLE_SQLSTATE.test(error.code ?? '') ? error : didNotAnswer(error);
  const guarded = new WeakMap<PgModule.PoolClient, PostgresPoolClient>();
  const guard = (client: PgModule.PoolClient): PostgresPoolClient => {
    let lost: DatabaseUnavailableError | undefined;
    /** Its prepared statements outlived a change of the tables they read: discarded on release (see isStalePlan). */
    let stale = false;
    const send = async (text: string, parameters: readonly unknown[], prepare = true): Promise<unknown> => {
      if (lost) throw lost;
      // Kysely passes a cursor (a stream) in place of the text; only a plain statement is named.
      const name = prepare && typeof text === 'string' ? names?.nameOf(text, parameters) : undefined;
      try {
        return await (name === undefined ? client.query(text, parameters as unknown[]) : client.query({ name, text, values: parameters as unknown[] }));
      } catch (error) {
        if (!(error instanceof DatabaseError)) throw (lost = didNotAnswer(error));
        if (name !== undefined && isStalePlan(error)) {
          stale = true;
          // Outside a transaction nothing was changed: the statement runs again, unprepared.
          if (client.getTransactionStatus() === 'I') return send(text, parameters, false);
        }
        throw asUnavailable(error);
      }
    };
    const { statement: observe } = observer;
    const query = observe ? (text: string, parameters: readonly unknown[]) => observe(text, () => send(text, parameters)) : send;
    return { query, release: (destroy?: boolean) => client.release(lost ?? (stale || destroy)) } as unknown as PostgresPoolClient;
  };
  const open = new Set<PgModule.PoolClient>();
  pool.on('connect', (client) => open.add(client));
  pool.on('remove', (client) => open.delete(client));
  return {
    async connect() {
      let client: PgModule.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        throw asUnavailable(error);
      }
      let guardedClient = guarded.get(client);
      if (guardedClient === undefined) guarded.set(client, (guardedClient = guard(client)));
      return guardedClient;
    },
    async end() {
      await pool.end();
      if (open.size === 0) return;
      // Each connection's goodbye waits for the server's; on a silent network path that never comes, and the socket
      // would keep the process alive for minutes. After a grace period, what is left is closed without it.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const client of open) client.connection.stream.destroy();
          resolve();
        }, closeGraceMs);
        pool.on('remove', () => {
          if (open.size > 0) return;
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

function openPostgres(config: Extract<DatabaseConfig, { kind: 'postgres' }>, observer: DbObserver): Db {
  const startup = ['-c TimeZone=UTC'];
  if (config.schema) startup.push(`-c search_path=${config.schema}`);
  const pool = new (loadPg().Pool)({
    connectionString: config.url,
    max: config.poolSize,
    // Every wait on the server is bounded here, by the client: a silent network path delivers no statement_timeout.
    connectionTimeoutMillis: config.connectTimeoutMs,
    query_timeout: config.queryTimeoutMs,
    // Idle connections to a server that vanished without a word are found and dropped by the OS.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: config.statementTimeoutMs || undefined,
    options: startup.join(' '),
    types: pgTypes,
    application_name: 'users-api',
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: boundedPool(pool, config.connectTimeoutMs, observer, config.preparedStatements ? new StatementNames() : undefined) }) });
  postgresPools.set(db, pool);
  return db;
}

/** The connection counts of a PostgreSQL pool (for metrics). */
export type PoolCounts = Pick<PgModule.Pool, 'totalCount' | 'idleCount' | 'waitingCount'>;

const postgresPools = new WeakMap<Db, PoolCounts>();

/** The pool behind `db`, or undefined for SQLite. */
export const postgresPoolOf = (db: Db): PoolCounts | undefined => postgresPools.get(db);

/** `observer` sees the store's statements and group commits (see observer.ts); none by default. */
export function openDatabase(config: DatabaseConfig, observer: DbObserver = {}): Db {
  return config.kind === 'sqlite' ? openSqlite(config, observer) : openPostgres(config, observer);
}

export function dialectOf<T>(db: Kysely<T>): DatabaseConfig['kind'] {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/** Where a store is, for messages: never the password. */
export function describeDatabase(config: DatabaseConfig): string {
  if (config.kind === 'sqlite') return `SQLite ${config.path}`;
  const url = new URL(config.url);
  if (url.password) url.password = '***';
  return `PostgreSQL ${url.toString()}${config.schema ? ` (schema ${config.schema})` : ''}`;
}

/** The database cannot be used, or did not answer (in time, or at all): a request answers 503, a command fails in one line. */
export class DatabaseUnavailableError extends OperatorError {}

/** Whether `error` means the store did not answer: on PostgreSQL (see boundedPool), or SQLite's lock wait ran out. */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof DatabaseUnavailableError || (typeof code === 'string' && code.startsWith('SQLITE_BUSY'));
}

/** A write refused because a primary key or unique index already holds its key (SQLite or PostgreSQL). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}

/** Opens the store and proves it answers, or fails with one clear sentence. */
export async function connectDatabase(config: DatabaseConfig, observer?: DbObserver): Promise<Db> {
  let db: Db | undefined;
  try {
    db = openDatabase(config, observer);
    await sql`select 1`.execute(db);
    return db;
  } catch (error) {
    await db?.destroy().catch(() => undefined);
    throw new DatabaseUnavailableError(`cannot use the database at ${describeDatabase(config)}: ${(error as Error).message}`);
  }
}
