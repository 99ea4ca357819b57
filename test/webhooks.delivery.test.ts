// Webhook delivery across instances and crashes: each event reaches a subscription once when nothing crashes,
// and every acknowledged change has its event delivered after a SIGKILL and a restart.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { createApiKey } from '../src/keys/keys.service.js';
import { resolveSecrets } from '../src/secrets.js';
import { basicAuth, openStore, STORES, TEST_PII_KEYS, TEST_SECRET } from './helpers/app.js';
import { cleanUpProcesses, exitOf, sqliteStoreWithKey, startServer, stopServer } from './helpers/process.js';
import { eventually, startReceiver } from './helpers/receiver.js';

// A short timeout keeps the leases short: on PostgreSQL a crashed instance's claims return when they end.
const WEBHOOK_ENV = { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_POLL_MS: '20', WEBHOOK_RETRY_BASE_MS: '30', WEBHOOK_TIMEOUT_MS: '1000' };

after(cleanUpProcesses);

describe('two instances on one PostgreSQL deliver each event once (postgres)', { skip: !STORES.includes('postgres') }, () => {
  it('60 creates spread over both instances, both delivering: 60 users.created, each once', { timeout: 60_000 }, async () => {
    const opened = await openStore('postgres');
    const receiver = await startReceiver();
    const env = { USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS, RATE_LIMIT_MAX: '0', MAX_EVENT_LOOP_DELAY_MS: '0', ...WEBHOOK_ENV, ...opened.env };
    const config = loadConfig(env);
    const secondDb = openDatabase(config.database);
    const apps = [
      await buildApp(config, { db: opened.db, secrets: resolveSecrets(config) }),
      await buildApp(config, { db: secondDb, secrets: resolveSecrets(config) }),
    ];
    try {
      await Promise.all(apps.map((app) => app.ready()));
      const key = await createApiKey(opened.db, { name: 'two-instances' });
      const headers = { authorization: basicAuth(key), 'content-type': 'application/json' };
      const sub = await apps[0]!.inject({ method: 'POST', url: '/v2/webhooks', headers, payload: { events: ['users.created'], name: 'both', url: receiver.url } });
      assert.equal(sub.statusCode, 201, sub.body);
      const ids = await Promise.all(
        Array.from({ length: 60 }, async (_, i) => (await apps[i % 2]!.inject({ method: 'POST', url: '/v2/users', headers, payload: {} })).json().id as string),
      );
      await eventually(() => receiver.received.length >= 60, () => `${receiver.received.length} of 60`);
      await new Promise((resolve) => setTimeout(resolve, 500)); // no duplicates trickle in
      const users = receiver.received.map((r) => (JSON.parse(r.body) as { data: { user: string } }).data.user);
      assert.equal(users.length, 60, 'each event delivered once');
      assert.deepEqual([...users].sort(), [...ids].sort());
      assert.equal(new Set(receiver.received.map((r) => r.headers['webhook-id'])).size, 60);
    } finally {
      for (const app of apps) await app.close();
      await secondDb.destroy().catch(() => undefined);
      await receiver.close();
      await opened.drop();
    }
  });
});

for (const store of STORES) {
  describe(`crash: every acknowledged create has its users.created delivered after a SIGKILL (${store})`, () => {
    it('creates stream in, SIGKILL mid-stream, restart: each 200 is delivered, nothing unsent invented', { timeout: 120_000 }, async () => {
      const receiver = await startReceiver();
      const opened = store === 'postgres' ? await openStore('postgres') : undefined;
      try {
        const sqlite = store === 'sqlite' ? await sqliteStoreWithKey('webhooks-crash') : undefined;
        const key = sqlite?.key ?? (await createApiKey(opened!.db, { name: 'webhooks-crash' }));
        const env = {
          ...(sqlite ? { DATABASE_URL: sqlite.path } : { ...opened!.env, USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS }),
          ...WEBHOOK_ENV,
          RATE_LIMIT_MAX: '0',
          MAX_EVENT_LOOP_DELAY_MS: '0',
        };
        const headers = { authorization: basicAuth(key), 'content-type': 'application/json' };
        const server = await startServer(env);
        const sub = await fetch(`${server.base}/v2/webhooks`, { method: 'POST', headers, body: JSON.stringify({ events: ['users.created'], name: 'crash', url: receiver.url }) });
        assert.equal(sub.status, 201);
        const acknowledged = new Set<string>();
        let killed = false;
        const client = async () => {
          while (!killed) {
            try {
              const res = await fetch(`${server.base}/v2/users`, { method: 'POST', headers, body: '{}' });
              if (res.status === 200) acknowledged.add(((await res.json()) as { id: string }).id);
            } catch {
              return; // the kill cut this one off
            }
            if (acknowledged.size >= 120 && !killed) {
              killed = true;
              server.child.kill('SIGKILL');
            }
          }
        };
        await Promise.all(Array.from({ length: 8 }, client));
        assert.deepEqual(await exitOf(server), { code: null, signal: 'SIGKILL' });

        const again = await startServer(env);
        try {
          const delivered = () => new Set(receiver.received.map((r) => (JSON.parse(r.body) as { data: { user: string } }).data.user));
          await eventually(() => [...acknowledged].every((id) => delivered().has(id)), () => `${[...acknowledged].filter((id) => !delivered().has(id)).length} acknowledged creates undelivered`, 30_000);
          // Anything delivered beyond the acknowledged ones was in flight at the kill and committed: it exists.
          for (const id of delivered()) {
            if (acknowledged.has(id)) continue;
            const res = await fetch(`${again.base}/v2/users/${id}`, { headers });
            assert.equal(res.status, 200, `an event for a user that does not exist: ${id}`);
          }
        } finally {
          assert.deepEqual(await stopServer(again), { code: 0, signal: null });
        }
      } finally {
        await receiver.close();
        await opened?.drop();
      }
    });
  });
}
