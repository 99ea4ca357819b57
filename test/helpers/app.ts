// Builds a migrated app on a fresh store per test file, with one tenant ready, and small request helpers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance, InjectOptions } from 'fastify';
import pg from 'pg';
import type { Logger } from 'pino';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config, type DatabaseConfig } from '../../src/config.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrations.js';
import { resolveSecrets } from '../../src/secrets.js';
import { createApiKey, type IssuedKey } from '../../src/keys/keys.service.js';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123456789';
/** Two PII keys: "test2" encrypts, "test1" only decrypts (as during a rotation). */
export const TEST_PII_KEYS = `test2:${Buffer.alloc(32, 2).toString('base64')},test1:${Buffer.alloc(32, 1).toString('base64')}`;

/** The seed contract's User object (../shared/seeds/users-openapi.yaml, components.schemas.User): its keys, in order. */
export const USER_KEYS = [
  'id',
  'created_at',
  'items_connected',
  'employers_connected',
  'external_metadata',
  'external_id',
  'first_name',
  'last_name',
  'email',
  'phone_number',
  'ssn',
  'address',
  'birth_date',
];
export const ADDRESS_KEYS = ['city', 'line1', 'line2', 'state', 'country', 'postal_code'];
export const BIRTH_DATE_KEYS = ['year', 'month', 'day'];

/** A create body with every field of the contract set. */
export const FULL_USER_BODY = {
  first_name: 'Sarah',
  last_name: 'Longfield',
  email: 'sarah@email.com',
  phone_number: '+12125555555',
  ssn: '123-45-6789',
  address: { city: 'New York', line1: '1 Main St', line2: 'Apt 2', state: 'NY', country: 'US', postal_code: '10001' },
  birth_date: { year: 1990, month: 2, day: 28 },
  external_metadata: { notes: 'In stage 1 of loan approval.', category: 'Summer Initiative' },
  open_banking: {
    end_user: { name: 'Lender', address: '2 Bank St', city: 'Boston', state: 'MA', zip: '02110', phone: '617-555-0100' },
  },
  external_id: 'July_Connection',
};

export type Store = 'sqlite' | 'postgres';

/** The PostgreSQL server the tests use; every test file works in a schema of its own there. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The stores every behavioural test runs on: SQLite always, PostgreSQL when reachable. In CI
 * (CI=true) PostgreSQL is never skipped: its tests run and fail if the server is not there.
 */
export const STORES: readonly Store[] =
  process.env.CI === 'true' || (await postgresReachable())
    ? ['sqlite', 'postgres']
    : (console.log(`# PostgreSQL not reachable at ${TEST_DATABASE_URL}: skipping the PostgreSQL runs of these tests`),
      ['sqlite']);

export interface Response {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface TestApi {
  app: FastifyInstance;
  db: Db;
  config: Config;
  tenant: IssuedKey;
  /** A request as `tenant` (or as `as`, or anonymous with as: null). */
  request(options: InjectOptions & { as?: IssuedKey | null }): Promise<Response>;
  newTenant(name?: string): Promise<IssuedKey>;
  close(): Promise<void>;
}

export function basicAuth(key: Pick<IssuedKey, 'api_key_id' | 'api_key_secret'>): string {
  return `Basic ${Buffer.from(`${key.api_key_id}:${key.api_key_secret}`).toString('base64')}`;
}

export interface TestStore {
  db: Db;
  database: DatabaseConfig;
  /** Environment that points a server process at this same store. */
  env: NodeJS.ProcessEnv;
  /** Closes the connection and removes the store's data. */
  drop(): Promise<void>;
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** A fresh store (migrated unless told not to): in-memory SQLite, or a new schema on the test PostgreSQL server. */
export async function openStore(store: Store, { migrate = true } = {}): Promise<TestStore> {
  if (store === 'sqlite') {
    const db = openDatabase({ kind: 'sqlite', path: ':memory:' });
    if (migrate) await migrateToLatest(db);
    return { db, database: { kind: 'sqlite', path: ':memory:' }, env: {}, drop: () => db.destroy() };
  }
  const schema = `test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create schema ${schema}`);
  const database = {
    kind: 'postgres',
    url: TEST_DATABASE_URL,
    schema,
    poolSize: 10,
    statementTimeoutMs: 10_000,
    queryTimeoutMs: 11_000,
    connectTimeoutMs: 5000,
    preparedStatements: true,
  } as const;
  const db = openDatabase(database);
  if (migrate) await migrateToLatest(db);
  return {
    db,
    database,
    env: { DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema },
    async drop() {
      await db.destroy();
      await adminQuery(`drop schema ${schema} cascade`);
    },
  };
}

/** A log destination that keeps each line written to it. */
export function lineSink(): { lines: string[]; sink: Writable } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, sink };
}

export interface TestApiOptions {
  logger?: Logger;
  /** The app opens a connection of its own from its configuration (DATABASE_URL...) rather than share `db`. */
  ownConnection?: boolean;
}

/** The app with `env` on top of the test defaults; silent unless given a `logger`. */
export async function createTestApi(store: Store, env: NodeJS.ProcessEnv = {}, { logger, ownConnection = false }: TestApiOptions = {}): Promise<TestApi> {
  const opened = await openStore(store);
  const { db } = opened;
  const config = loadConfig({
    USER_TOKEN_SECRET: TEST_SECRET,
    PII_KEYS: TEST_PII_KEYS,
    // Budgets and load shedding have their own tests; elsewhere they would only add noise.
    RATE_LIMIT_MAX: '0',
    API_KEY_CACHE_MS: '0',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    ...opened.env,
    ...env,
  });
  const appDb = ownConnection ? openDatabase(config.database) : db;
  const app = await buildApp(config, { db: appDb, secrets: resolveSecrets(config), ...(logger ? { logger } : {}) });
  await app.ready();
  const tenant = await createApiKey(db, { name: 'tenant-a' });
  return {
    app,
    db,
    config,
    tenant,
    async request({ as, headers, ...options }) {
      const auth = as === null ? {} : { authorization: basicAuth(as ?? tenant) };
      const res = await app.inject({ ...options, headers: { ...auth, ...headers } });
      let json: unknown;
      try {
        json = res.body === '' ? undefined : JSON.parse(res.body);
      } catch {
        json = undefined;
      }
      return { status: res.statusCode, headers: res.headers, body: res.body, json };
    },
    newTenant: (name = 'tenant-b') => createApiKey(db, { name }),
    async close() {
      await app.close();
      if (appDb !== db) await appDb.destroy();
      await opened.drop();
    },
  };
}

/** How many users the store holds for every tenant together: proof that a rejected request stored nothing. */
export async function countUsers(db: Db): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** A snapshot of every stored user row, to prove a rejected request changed nothing. */
export async function snapshotUsers(db: Db): Promise<string> {
  return JSON.stringify(await db.selectFrom('users').selectAll().orderBy('id').execute());
}

export async function createUser(api: TestApi, body: unknown = {}, as?: IssuedKey): Promise<string> {
  const res = await api.request({ method: 'POST', url: '/v2/users', payload: body as object, as });
  if (res.status !== 200) throw new Error(`create failed: ${res.status} ${res.body}`);
  return res.json.id as string;
}

/** Values of a list's `limit` that DRF's IntegerField(min_value=1) refuses, with its message for each. */
export const INVALID_LIMITS: ReadonlyArray<readonly [string, string]> = [
  ['0', 'Ensure this value is greater than or equal to 1.'],
  ['-3', 'Ensure this value is greater than or equal to 1.'],
  ['abc', 'A valid integer is required.'],
  ['1.5', 'A valid integer is required.'],
  ['0x10', 'A valid integer is required.'],
  ['1e3', 'A valid integer is required.'],
  ['', 'A valid integer is required.'],
];

/** The path and query of a next/previous link, for inject; asserts it carries only a cursor. */
export function follow(link: string): string {
  const url = new URL(link);
  assert.deepEqual([...url.searchParams.keys()], ['cursor']);
  return `${url.pathname}${url.search}`;
}
