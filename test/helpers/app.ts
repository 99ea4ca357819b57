// Builds a migrated app on a fresh store per test file, with one tenant ready, and small request helpers.
import type { FastifyInstance, InjectOptions } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { openDatabase, type Db } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrations.js';
import { createApiKey, type IssuedKey } from '../../src/keys/keys.service.js';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123456789';

/** The stores every behavioural test runs on. */
export const STORES = ['sqlite'] as const;
export type Store = (typeof STORES)[number];

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

export async function openStore(_store: Store): Promise<Db> {
  const db = openDatabase(':memory:');
  await migrateToLatest(db);
  return db;
}

export async function createTestApi(store: Store, env: NodeJS.ProcessEnv = {}): Promise<TestApi> {
  const db = await openStore(store);
  const config = loadConfig({ USER_TOKEN_SECRET: TEST_SECRET, ...env });
  const app = await buildApp(config, { db, secret: TEST_SECRET });
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
      await db.destroy();
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
