// Personal data that cannot be read: pii rotate never leaves a live instance with rows it cannot read; an instance
// short of a key answers 503; a damaged ciphertext fails its request with a plain 500 naming the row only in the log.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { HEARTBEAT_TTL_MS, InstanceHeartbeat } from '../src/instances.js';
import { createLogger } from '../src/logger.js';
import { parsePiiKeys, PiiCipher } from '../src/pii/pii.cipher.js';
import { RotationRefusedError, rotatePii } from '../src/pii/pii.rotate.js';
import { isoMicros, nowMicros } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { createApiKey } from '../src/keys/keys.service.js';
import { resolveSecrets } from '../src/secrets.js';
import { basicAuth, createTestApi, createUser, lineSink, openStore, snapshotUsers, STORES, TEST_PII_KEYS, TEST_SECRET, type TestApi } from './helpers/app.js';
import { assertOneLineError, cleanUpProcesses, cli, sqliteStoreWithKey, startServer, stopServer } from './helpers/process.js';

const OLD = `old1:${Buffer.alloc(32, 11).toString('base64')}`;
const NEW = `new1:${Buffer.alloc(32, 12).toString('base64')}`;
const NEW_FIRST = `${NEW},${OLD}`;
const SSN = '123-45-6789';

const keysOf = async (api: TestApi) =>
  new Set((await api.db.selectFrom('users').select('pii').execute()).map((row) => String(row.pii).split('.')[1]));

for (const store of STORES) {
  describe(`pii rotate checks every live instance first (${store})`, () => {
    let api: TestApi;
    before(async () => {
      // The serving app holds the old key only, as instances do before a new PII_KEYS is rolled out.
      api = await createTestApi(store, { PII_KEYS: OLD });
      for (let i = 0; i < 5; i++) await createUser(api, { ssn: SSN });
    });
    after(() => api.close());

    it('refuses, naming the instance and the key, while a live instance lacks the new key; writes nothing', async () => {
      const live = await InstanceHeartbeat.start(api.db, ['old1']);
      try {
        const before = await snapshotUsers(api.db);
        await assert.rejects(rotatePii(api.db, new PiiCipher(parsePiiKeys(NEW_FIRST)), 2), (error: Error) => {
          assert.ok(error instanceof RotationRefusedError);
          assert.match(error.message, /^refusing to re-encrypt: /);
          assert.ok(error.message.includes(`instance ${live.instance.label} (id ${live.instance.id}`), error.message);
          assert.match(error.message, /does not hold PII key new1/);
          return true;
        });
        assert.equal(await snapshotUsers(api.db), before);
      } finally {
        await live.stop();
      }
    });

    it('ignores instances whose heartbeat expired (they crashed) and rotates once every live one holds the key', async () => {
      await api.db
        .insertInto('instances')
        .values({
          id: 'crashed',
          label: 'gone:1',
          pii_key_ids: '["old1"]',
          started_at: isoMicros(nowMicros() - 3_600_000_000),
          expires_at: isoMicros(nowMicros() - HEARTBEAT_TTL_MS * 1000),
        })
        .execute();
      const ready = await InstanceHeartbeat.start(api.db, ['new1', 'old1']);
      try {
        assert.equal(await rotatePii(api.db, new PiiCipher(parsePiiKeys(NEW_FIRST)), 2), 5);
        assert.deepEqual(await keysOf(api), new Set(['new1']));
      } finally {
        await ready.stop();
      }
    });
  });

  describe(`an instance short of a PII key answers 503 and logs the key id once (${store})`, () => {
    it('GET and list of users under a key this instance lacks: 503 in DRF words, one error line naming the key, no stack', async () => {
      // Users written by an instance that encrypts under "new1" ...
      const writer = await createTestApi(store, { PII_KEYS: NEW_FIRST });
      const { lines, sink } = lineSink();
      const config = loadConfig({ USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: OLD, RATE_LIMIT_MAX: '0', MAX_EVENT_LOOP_DELAY_MS: '0' });
      // ... read by one that was started with the old PII_KEYS.
      const reader = await buildApp(config, { db: writer.db, secrets: resolveSecrets(config), logger: createLogger('info', sink) });
      try {
        const id = await createUser(writer, { ssn: SSN });
        const headers = { authorization: basicAuth(writer.tenant) };
        for (const url of [`/v2/users/${id}`, '/v2/users', `/v2/users?external_id=x&limit=5`]) {
          lines.length = 0;
          const res = await reader.inject({ method: 'GET', url, headers });
          if (url.includes('external_id')) {
            assert.equal(res.statusCode, 200, 'a page without such rows reads fine');
            continue;
          }
          assert.equal(res.statusCode, 503, res.body);
          assert.deepEqual(res.json(), { detail: 'Service temporarily unavailable, try again later.' });
          const errors = lines.map((line) => JSON.parse(line)).filter((entry) => entry.level >= 50);
          assert.equal(errors.length, 1, lines.join(''));
          assert.equal(errors[0].piiKeyId, 'new1');
          assert.match(errors[0].msg, /PII key "new1"/);
          assert.equal(errors[0].err, undefined, 'no error object, so no stack');
          assert.doesNotMatch(lines.join(''), /\n\s+at |123-45-6789/);
        }
        // The instance that holds the key still reads the same user.
        assert.equal((await writer.request({ method: 'GET', url: `/v2/users/${id}` })).json.ssn, SSN);
      } finally {
        await reader.close();
        await writer.close();
      }
    });
  });

  describe(`a damaged ciphertext fails its request, names the row once in the log, and harms no other row (${store})`, () => {
    it('GET and a page holding it: 500 in DRF words, one error line with the user id, no stack; other users read fine', async () => {
      const api = await createTestApi(store);
      const { lines, sink } = lineSink();
      const config = loadConfig({ USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS, RATE_LIMIT_MAX: '0', MAX_EVENT_LOOP_DELAY_MS: '0' });
      const app = await buildApp(config, { db: api.db, secrets: resolveSecrets(config), logger: createLogger('info', sink) });
      try {
        const healthy = await createUser(api, { ssn: SSN, external_id: 'healthy' });
        const damaged = await createUser(api, { ssn: SSN, external_id: 'damaged' });
        const row = await api.db.selectFrom('users').select('pii').where('id', '=', damaged).executeTakeFirstOrThrow();
        const parts = String(row.pii).split('.');
        const body = Buffer.from(parts[3]!, 'base64url');
        body[0] = body[0]! ^ 0x01;
        parts[3] = body.toString('base64url');
        await api.db.updateTable('users').set({ pii: parts.join('.') }).where('id', '=', damaged).execute();

        const headers = { authorization: basicAuth(api.tenant) };
        for (const url of [`/v2/users/${damaged}`, '/v2/users?limit=10']) {
          lines.length = 0;
          const res = await app.inject({ method: 'GET', url, headers });
          assert.equal(res.statusCode, 500, res.body);
          assert.deepEqual(res.json(), { detail: 'A server error occurred.' });
          const errors = lines.map((line) => JSON.parse(line)).filter((entry) => entry.level >= 50);
          assert.equal(errors.length, 1, lines.join(''));
          assert.equal(errors[0].record, `user ${damaged}`);
          assert.equal(errors[0].err, undefined, 'no error object, so no stack');
          assert.doesNotMatch(lines.join(''), /\n\s+at |123-45-6789/);
        }
        const other = await app.inject({ method: 'GET', url: `/v2/users/${healthy}`, headers });
        assert.equal(other.statusCode, 200);
        assert.equal(other.json().ssn, SSN);
        assert.equal((await app.inject({ method: 'GET', url: '/v2/users?external_id=healthy', headers })).statusCode, 200);
      } finally {
        await app.close();
        await api.close();
      }
    });
  });

  describe(`users-api pii rotate against a running server (${store})`, () => {
    after(cleanUpProcesses);

    it('refuses while the server runs with the old PII_KEYS, and rotates once it has stopped', { timeout: 120_000 }, async () => {
      const opened = store === 'sqlite' ? undefined : await openStore(store);
      try {
        const sqlite = store === 'sqlite' ? await sqliteStoreWithKey('rotate') : undefined;
        const key = sqlite?.key ?? (await createApiKey(opened!.db, { name: 'rotate' }));
        const env = {
          ...(sqlite ? { DATABASE_URL: sqlite.path } : opened!.env),
          USER_TOKEN_SECRET: TEST_SECRET,
          LOG_LEVEL: 'warn',
        };
        const server = await startServer({ ...env, PII_KEYS: OLD, LOG_LEVEL: 'info' });
        const auth = { authorization: basicAuth(key), 'content-type': 'application/json' };
        const created = await fetch(`${server.base}/v2/users`, { method: 'POST', headers: auth, body: JSON.stringify({ ssn: SSN }) });
        assert.equal(created.status, 200);
        const { id } = (await created.json()) as { id: string };

        const refused = await cli(['pii', 'rotate'], { ...env, PII_KEYS: NEW_FIRST });
        assertOneLineError(refused, new RegExp(`refusing to re-encrypt: instance [^ ]+:${server.child.pid} .*does not hold PII key new1`));
        const read = await fetch(`${server.base}/v2/users/${id}`, { headers: auth });
        assert.equal(read.status, 200, 'the running instance still reads the user');
        assert.equal(((await read.json()) as { ssn: string }).ssn, SSN);

        assert.deepEqual(await stopServer(server), { code: 0, signal: null });
        const rotated = await cli(['pii', 'rotate'], { ...env, PII_KEYS: NEW_FIRST });
        assert.equal(rotated.code, 0, rotated.stderr);
        assert.match(rotated.stdout, /re-encrypted 1 users under key new1/);
      } finally {
        await opened?.drop();
      }
    });
  });
}
