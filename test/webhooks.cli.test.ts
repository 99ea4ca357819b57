// users-api webhooks list|deliveries|retry against a store the API wrote, as an operator would run them.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { resolveSecrets } from '../src/secrets.js';
import { basicAuth } from './helpers/app.js';
import { assertOneLineError, cleanUpProcesses, cli, sqliteStoreWithKey } from './helpers/process.js';

after(cleanUpProcesses);

describe('users-api webhooks (sqlite)', () => {
  it('lists subscriptions and deliveries as JSON lines, and makes a failed delivery due again', { timeout: 90_000 }, async () => {
    const { path, key } = await sqliteStoreWithKey('webhooks-cli');
    // The API writes a subscription and one delivery, which then fails (nothing listens on port 9).
    const env = { DATABASE_URL: path, WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_MAX_ATTEMPTS: '1', WEBHOOK_POLL_MS: '20', WEBHOOK_TIMEOUT_MS: '500' };
    const config = loadConfig(env);
    const db = openDatabase(config.database);
    const app = await buildApp(config, { db, secrets: resolveSecrets(config, db) });
    await app.ready();
    const headers = { authorization: basicAuth(key), 'content-type': 'application/json' };
    let webhookId: string;
    try {
      const sub = await app.inject({ method: 'POST', url: '/v2/webhooks', headers, payload: { events: ['users.created'], name: 'ops', url: 'http://127.0.0.1:9/hook', secret: 'a-secret-of-sixteen-chars' } });
      webhookId = sub.json().id;
      await app.inject({ method: 'POST', url: '/v2/users', headers, payload: {} });
      for (let i = 0; i < 200; i++) {
        const [row] = await db.selectFrom('webhook_deliveries').select('status').execute();
        if (row?.status === 'failed') break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      await app.close();
      await db.destroy();
    }

    const listed = await cli(['webhooks', 'list', '--client', key.client_id], env);
    assert.equal(listed.code, 0, listed.stderr);
    const [webhook] = listed.stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(webhook.id, webhookId);
    assert.equal(webhook.has_secret, true);
    assert.equal(listed.stdout.includes('a-secret-of-sixteen-chars'), false, 'never the secret');

    const failed = await cli(['webhooks', 'deliveries', '--client', key.client_id, '--status', 'failed', webhookId], env);
    assert.equal(failed.code, 0, failed.stderr);
    const [delivery] = failed.stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(delivery.status, 'failed');
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.event, 'users.created');

    const retried = await cli(['webhooks', 'retry', '--client', key.client_id, webhookId, delivery.id], env);
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, new RegExp(`delivery ${delivery.id} is due again`));
    const pending = await cli(['webhooks', 'deliveries', '--client', key.client_id, '--status', 'pending', webhookId], env);
    assert.equal(JSON.parse(pending.stdout.trim()).id, delivery.id);

    // Another client's id, and a bad status, in one line each.
    assertOneLineError(await cli(['webhooks', 'deliveries', '--client', '00000000-0000-4000-8000-000000000000', webhookId], env), /Not found\./);
    assertOneLineError(await cli(['webhooks', 'deliveries', '--client', key.client_id, '--status', 'lost', webhookId], env), /--status must be/);
  });
});
