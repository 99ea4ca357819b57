// Prometheus metrics on METRICS_PORT: exact counts of a scripted flow against a real server, nothing personal in the
// scrape; and with METRICS_PORT unset, no second port, no hook and no prom-client at all.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { after, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { createApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { createLogger } from '../src/logger.js';
import { resolveSecrets } from '../src/secrets.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import { basicAuth, FULL_USER_BODY, openStore, STORES, TEST_PII_KEYS, TEST_SECRET, type Store } from './helpers/app.js';
import { cleanUpProcesses, listeningPorts, sqliteStoreWithKey, startServer, stopServer } from './helpers/process.js';
import { eventually, startReceiver } from './helpers/receiver.js';

after(cleanUpProcesses);

/** The modules loaded so far (prom-client and the OpenTelemetry SDK are CommonJS: they land in this cache). */
const loaded = (name: string) => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes(`/node_modules/${name}/`));

/** A store the server can open, with `n` API keys (each its own rate-limit budget). */
async function storeWithKeys(store: Store, n: number): Promise<{ env: NodeJS.ProcessEnv; keys: IssuedKey[]; drop: () => Promise<void> }> {
  if (store === 'sqlite') {
    const { path, key } = await sqliteStoreWithKey('metrics');
    const db = openDatabase({ kind: 'sqlite', path });
    try {
      const keys = [key];
      while (keys.length < n) keys.push(await createApiKey(db, { name: `metrics-${keys.length}` }));
      return { env: { DATABASE_URL: path }, keys, drop: async () => undefined };
    } finally {
      await db.destroy();
    }
  }
  const opened = await openStore('postgres');
  const keys: IssuedKey[] = [];
  while (keys.length < n) keys.push(await createApiKey(opened.db, { name: `metrics-${keys.length}` }));
  return { env: { ...opened.env, USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS }, keys, drop: () => opened.drop() };
}

/** Every sample of a scrape: `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    found.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return found;
}

/** The samples of one metric, keyed by their labels as written (`{route="...",...}`, or '' for none). */
function metric(all: Map<string, number>, name: string): Map<string, number> {
  const picked = new Map<string, number>();
  for (const [series, value] of all) {
    const brace = series.indexOf('{');
    if ((brace === -1 ? series : series.slice(0, brace)) === name) picked.set(brace === -1 ? '' : series.slice(brace), value);
  }
  return picked;
}

const READY = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:(\d+))"[\s\S]*"msg":"Metrics listening at http:\/\/127\.0\.0\.1:\d+\/metrics"/;

for (const store of STORES) {
  describe(`metrics on METRICS_PORT (${store})`, () => {
    it('counts a scripted flow exactly per route, method and status; no id, key or personal value in the scrape', { timeout: 120_000 }, async () => {
      const receiver = await startReceiver();
      const { env, keys, drop } = await storeWithKeys(store, 3);
      const [a, b, c] = keys as [IssuedKey, IssuedKey, IssuedKey];
      try {
        const server = await startServer(
          { ...env, METRICS_PORT: '0', RATE_LIMIT_MAX: '5', MAX_EVENT_LOOP_DELAY_MS: '0', WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_POLL_MS: '20' },
          { ready: READY },
        );
        const metricsPort = Number(/Metrics listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(server.stdout())![1]);
        const scrape = async () => {
          const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
          assert.equal(res.status, 200);
          assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
          return res.text();
        };
        try {
          const ports = listeningPorts(server.child.pid!);
          if (ports) assert.deepEqual(ports, [server.port, metricsPort].sort((x, y) => x - y));
          assert.equal((await fetch(`${server.base}/metrics`)).status, 404, 'the API port serves no metrics');

          const call = (key: IssuedKey | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
            fetch(`${server.base}${path}`, {
              method,
              headers: { ...(key ? { authorization: basicAuth(key) } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
              ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            });
          const ids: string[] = [];
          // a: two creates, a 404 and a 400.
          for (const body of [FULL_USER_BODY, {}]) {
            const res = await call(a, 'POST', '/v2/users', body);
            assert.equal(res.status, 200);
            ids.push(((await res.json()) as { id: string }).id);
          }
          const missing = randomUUID();
          assert.equal((await call(a, 'GET', `/v2/users/${missing}`)).status, 404);
          assert.equal((await call(a, 'POST', '/v2/users', { email: 'not-an-email' })).status, 400);
          // b: a subscription, then one create sent twice with one Idempotency-Key (its event delivered once).
          const secret = 'whsec_' + Buffer.alloc(24, 7).toString('base64');
          assert.equal((await call(b, 'POST', '/v2/webhooks', { events: ['users.created'], name: 'metrics', url: receiver.url, secret })).status, 201);
          const idempotencyKey = `metrics-${randomUUID()}`;
          const person = { first_name: 'Margaret', last_name: 'Hamilton', email: 'margaret.hamilton@email.com', phone_number: '+12125550199', ssn: '987-65-4321' };
          const first = await call(b, 'POST', '/v2/users', person, { 'idempotency-key': idempotencyKey });
          const again = await call(b, 'POST', '/v2/users', person, { 'idempotency-key': idempotencyKey });
          assert.equal(again.headers.get('idempotent-replayed'), 'true');
          ids.push(((await first.json()) as { id: string }).id);
          // c: six lists with a budget of five.
          const statuses = [];
          for (let i = 0; i < 6; i++) statuses.push((await call(c, 'GET', '/v2/users?external_id=July_Connection')).status);
          assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
          // Nobody: a path no route matches.
          assert.equal((await call(null, 'GET', '/no-such-page')).status, 404);

          await eventually(() => receiver.received.length === 1, () => `${receiver.received.length} deliveries`);
          let all = samples(await scrape());
          await eventually(
            async () => {
              all = samples(await scrape());
              return all.get('users_api_webhook_delivery_attempts_total{outcome="delivered"}') === 1 && all.get('users_api_webhook_outbox_pending') === 0;
            },
            () => `delivered ${all.get('users_api_webhook_delivery_attempts_total{outcome="delivered"}')}, pending ${all.get('users_api_webhook_outbox_pending')}`,
          );

          const expected = new Map([
            ['{route="/v2/users",method="POST",status="200"}', 4],
            ['{route="/v2/users",method="POST",status="400"}', 1],
            ['{route="/v2/users/:id",method="GET",status="404"}', 1],
            ['{route="/v2/webhooks",method="POST",status="201"}', 1],
            ['{route="/v2/users",method="GET",status="200"}', 5],
            ['{route="/v2/users",method="GET",status="429"}', 1],
            // /no-such-page, and /metrics asked of the API's port above.
            ['{route="unmatched",method="GET",status="404"}', 2],
          ]);
          assert.deepEqual(metric(all, 'users_api_http_requests_total'), expected);
          assert.deepEqual(metric(all, 'users_api_http_request_duration_seconds_count'), expected);
          for (const [labels, sum] of metric(all, 'users_api_http_request_duration_seconds_sum')) assert.ok(sum > 0 && sum < 30, `${labels} ${sum}`);
          assert.equal(all.get('users_api_http_requests_in_flight'), 0);
          assert.deepEqual(metric(all, 'users_api_idempotency_replays_total'), new Map([['{route="/v2/users"}', 1]]));
          assert.deepEqual(metric(all, 'users_api_rate_limit_rejections_total'), new Map([['{route="/v2/users"}', 1]]));
          assert.deepEqual(metric(all, 'users_api_load_shed_total'), new Map());
          assert.deepEqual(
            metric(all, 'users_api_webhook_delivery_attempts_total'),
            new Map([['{outcome="delivered"}', 1], ['{outcome="retry"}', 0], ['{outcome="failed"}', 0]]),
          );
          if (store === 'sqlite') {
            // Three creates (each a unit with its events and idempotency record) and the delivery's outcome, at least.
            assert.ok(all.get('users_api_sqlite_group_commit_writes_sum')! >= 4, String(all.get('users_api_sqlite_group_commit_writes_sum')));
            assert.equal(all.get('users_api_sqlite_group_commit_duration_seconds_count'), all.get('users_api_sqlite_group_commit_writes_count'));
            assert.equal(metric(all, 'users_api_db_pool_connections').size, 0);
          } else {
            const total = all.get('users_api_db_pool_connections')!;
            assert.ok(total >= 1 && total <= 10, String(total));
            assert.ok(all.get('users_api_db_pool_idle_connections')! <= total);
            assert.equal(all.get('users_api_db_pool_waiting_requests'), 0);
            assert.equal(metric(all, 'users_api_sqlite_group_commit_writes_count').size, 0);
          }
          // Node's own: event-loop lag, GC, heap, RSS.
          const text = await scrape();
          for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_gc_duration_seconds', 'nodejs_heap_size_used_bytes', 'process_resident_memory_bytes']) {
            assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'));
          }

          const secrets = [
            ...ids,
            missing,
            idempotencyKey,
            secret,
            'no-such-page',
            'July_Connection',
            '/hooks',
            ...keys.flatMap((key) => [key.client_id, key.api_key_id, key.api_key_secret]),
            ...[FULL_USER_BODY, person].flatMap((p) => [p.first_name, p.last_name, p.email, p.phone_number, p.ssn, p.ssn.replaceAll('-', '')]),
          ];
          for (const value of secrets) assert.equal(text.includes(value), false, `the scrape holds ${value}`);
        } finally {
          assert.deepEqual(await stopServer(server), { code: 0, signal: null });
        }
        await assert.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`), 'the metrics server stops with the API');
      } finally {
        await receiver.close();
        await drop();
      }
    });
  });
}

describe('metrics off (METRICS_PORT unset)', () => {
  const base = { USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS, DATABASE_URL: ':memory:', RATE_LIMIT_MAX: '0', MAX_EVENT_LOOP_DELAY_MS: '0' };

  /** How many hooks of each kind GET /healthz runs, from Fastify's own listing. */
  async function hooksOfHealthz(telemetry: Telemetry | undefined): Promise<Record<string, number>> {
    const config = loadConfig(base);
    const { db, drop } = await openStore('sqlite');
    const app = await buildApp(config, { db, secrets: resolveSecrets(config), ...(telemetry ? { telemetry } : {}) });
    try {
      await app.ready();
      const listing = app.printRoutes({ includeHooks: true, commonPrefix: false });
      const lines = listing.split('\n');
      const hooks: Record<string, number> = {};
      for (const line of lines.slice(lines.findIndex((l) => l.includes('/healthz (GET)')) + 1)) {
        const listed = /• \((\w+)\) (\[.*\])/.exec(line);
        if (!listed) break;
        hooks[listed[1]!] = (JSON.parse(listed[2]!) as string[]).length;
      }
      return hooks;
    } finally {
      await app.close();
      await drop();
    }
  }

  it('builds the app as serve does with no telemetry: no hook added, neither prom-client nor the OpenTelemetry SDK loaded', async () => {
    const log = createLogger('silent');
    const off = await Telemetry.start(loadConfig(base), log);
    assert.equal(off, undefined);
    const without = await hooksOfHealthz(off);
    assert.equal(loaded('prom-client'), false, 'prom-client was loaded');
    assert.equal(loaded('@opentelemetry/sdk-trace-node'), false, 'the OpenTelemetry SDK was loaded');

    // The same check sees metrics when they are on: one onRequest and one onResponse hook more.
    const on = await Telemetry.start(loadConfig({ ...base, METRICS_PORT: '0' }), log);
    assert.ok(on);
    assert.equal(loaded('prom-client'), true);
    const withMetrics = await hooksOfHealthz(on);
    assert.equal(withMetrics.onRequest, (without.onRequest ?? 0) + 1, JSON.stringify({ without, withMetrics }));
    assert.equal(withMetrics.onResponse, (without.onResponse ?? 0) + 1, JSON.stringify({ without, withMetrics }));
    assert.equal(loaded('@opentelemetry/sdk-trace-node'), false, 'metrics alone load no tracing');
  });

  it('a server without METRICS_PORT listens on its API port only', { timeout: 60_000 }, async (t) => {
    const { path } = await sqliteStoreWithKey('metrics-off');
    const server = await startServer({ DATABASE_URL: path });
    try {
      const ports = listeningPorts(server.child.pid!);
      if (ports === undefined) return t.skip('no /proc/net/tcp here');
      assert.deepEqual(ports, [server.port]);
      assert.doesNotMatch(server.stdout(), /Metrics listening/);
    } finally {
      assert.deepEqual(await stopServer(server), { code: 0, signal: null });
    }
  });
});
