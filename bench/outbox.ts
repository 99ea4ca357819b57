// What the outbox adds to a create's transaction, without HTTP: groups of 10 user inserts committed like the group
// commit does (WAL, synchronous=FULL, secure_delete, a savepoint per unit), each user with or without the outbox
// row of a users.created event in the shapes the outbox has had. Prints CPU and wall time per create.
//
//   node --import tsx bench/outbox.ts            # BENCH_OUTBOX_GROUPS groups of 10 (default 800), 3 rounds
//
// Variants: `user`: the user alone; `delivery`: a delivery row per subscription as the outbox wrote it in the change
// until migration 0006 (five b-trees, the body encrypted, 1.3 KB); `delivery, no body`: the same row with an empty
// payload; `event`: the row of webhook_events that a change writes now (no index beyond its seq), with the resource
// encrypted; `event, resource not encrypted`: what the encryption costs (the service encrypts it); `event, no
// resource`: the row for a subscription without include_resource.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { newPiiKeyEntry, parsePiiKeys, PiiCipher } from '../src/pii/pii.cipher.js';
import { newId } from '../src/users/users.ids.js';
import { fixed, table } from './harness.js';

const GROUPS = Number(process.env.BENCH_OUTBOX_GROUPS ?? 800);
const VARIANTS = ['user', 'delivery', 'delivery, no body', 'event', 'event, resource not encrypted', 'event, no resource'] as const;
type Variant = (typeof VARIANTS)[number];

async function migratedStore(dir: string): Promise<string> {
  const path = join(dir, 'outbox.db');
  const db = openDatabase(loadConfig({ DATABASE_URL: path }).database);
  await migrateToLatest(db);
  await db.destroy();
  return path;
}

function measure(path: string, variant: Variant, cipher: PiiCipher): { cpuUs: number; wallUs: number } {
  const db = new SQLite(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('secure_delete = ON');
  const client = randomUUID();
  const hook = randomUUID();
  db.prepare("insert into clients (id, name, created_at) values (?, 'bench', '2026-01-01T00:00:00Z')").run(client);
  db.prepare("insert into webhooks values (?, ?, 'bench', 'https://example.com/hooks', '[\"users.created\"]', null, 1, '2026-01-01T00:00:00Z')").run(client, hook);
  const insertUser = db.prepare(
    `insert into users (client_id, id, created_at, updated_at, version, external_id, first_name, last_name, email, phone_number, pii,
       items_connected, employers_connected, external_metadata) values (?, ?, ?, ?, 1, ?, 'Alexandra', 'Johnson', 'alexandra.johnson@example.com', '+12125551234', ?, '[]', '[]', '{}')`,
  );
  const insertDelivery = db.prepare(
    `insert into webhook_deliveries (client_id, id, webhook_id, user_id, event, payload, status, attempts, next_attempt_at, created_at, updated_at)
     select ?, ?, ?, ?, 'users.created', ?, 'pending', 0, ?, ?, ? where exists (select 1 from webhooks where client_id = ? and id = ?)`,
  );
  const insertEvent = db.prepare(
    'insert into webhook_events (client_id, user_id, account_id, event, webhooks, resource, created_at) values (?, ?, null, ?, ?, ?, ?)',
  );
  const [begin, commit, savepoint, release] = ['BEGIN IMMEDIATE', 'COMMIT', 'SAVEPOINT unit', 'RELEASE unit'].map((sql) => db.prepare(sql));
  const resource = (id: string, at: string) => ({
    id,
    created_at: at,
    items_connected: [],
    employers_connected: [],
    external_metadata: {},
    external_id: null,
    first_name: 'Alexandra',
    last_name: 'Johnson',
    email: 'alexandra.johnson@example.com',
    phone_number: '+12125551234',
  });
  const group = () => {
    begin!.run();
    for (let i = 0; i < 10; i++) {
      const { id, createdAt } = newId();
      const pii = cipher.encrypt('{"ssn":"123-45-6789","birth_date":{"year":1980,"month":1,"day":2}}', `${client}/${id}/pii`);
      if (variant === 'user') {
        insertUser.run(client, id, createdAt, createdAt, id, pii);
        continue;
      }
      savepoint!.run();
      insertUser.run(client, id, createdAt, createdAt, id, pii);
      if (variant === 'delivery' || variant === 'delivery, no body') {
        const delivery = newId().id;
        const body =
          variant === 'delivery'
            ? cipher.encrypt(JSON.stringify({ event: 'users.created', name: 'bench', data: { user: id, resource: resource(id, createdAt) } }), `${client}/${delivery}/webhook-payload`)
            : '';
        insertDelivery.run(client, delivery, hook, id, body, createdAt, createdAt, createdAt, client, hook);
      } else {
        const json = variant === 'event, no resource' ? null : JSON.stringify(resource(id, createdAt));
        const sealed = variant === 'event' ? cipher.encrypt(json!, `${client}/${id}/webhook-event`) : json;
        insertEvent.run(client, id, 'users.created', hook, sealed, createdAt);
      }
      release!.run();
    }
    commit!.run();
  };
  for (let i = 0; i < 100; i++) group(); // warm-up
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < GROUPS; i++) group();
  const used = process.cpuUsage(cpu);
  const wallMs = performance.now() - started;
  db.close();
  const creates = GROUPS * 10;
  return { cpuUs: (used.user + used.system) / creates, wallUs: (wallMs * 1000) / creates };
}

const dir = mkdtempSync(join(tmpdir(), 'users-api-outbox-'));
try {
  const cipher = new PiiCipher(parsePiiKeys(newPiiKeyEntry('bench')));
  const results = new Map<Variant, Array<{ cpuUs: number; wallUs: number }>>(VARIANTS.map((v) => [v, []]));
  for (let round = 0; round < 3; round++) {
    // Interleaved, each on a fresh store: the host's drift hits every variant alike.
    for (const variant of VARIANTS) results.get(variant)!.push(measure(await migratedStore(mkdtempSync(join(dir, 'r'))), variant, cipher));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = median(results.get('user')!.map((r) => r.cpuUs));
  process.stdout.write(
    `${GROUPS} groups of 10 creates per variant and round, 3 interleaved rounds (median; per create):\n\n` +
      table(
        ['variant', 'CPU µs', 'CPU µs added', 'wall µs'],
        VARIANTS.map((v) => {
          const cpu = median(results.get(v)!.map((r) => r.cpuUs));
          return [v, fixed(cpu, 1), v === 'user' ? '' : fixed(cpu - base, 1), fixed(median(results.get(v)!.map((r) => r.wallUs)), 1)];
        }),
        ['l', 'r', 'r', 'r'],
      ) +
      '\n',
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
