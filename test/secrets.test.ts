// An embedded store's secret files: generated for a new store, never silently replaced once data depends on them.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { createApiKey } from '../src/keys/keys.service.js';
import { resolveSecrets } from '../src/secrets.js';
import { basicAuth, countUsers } from './helpers/app.js';
import { assertOneLineError, cleanUpProcesses, cli, makeTempDir, startServer, stopServer } from './helpers/process.js';

const PII_KEYS = `given1:${Buffer.alloc(32, 5).toString('base64')}`;

/** A SQLite store in a temp dir with one user (with or without an SSN), written by an app with `env`. */
async function storeWithUser(env: Record<string, string>, body: object): Promise<{ dir: string; path: string }> {
  const dir = makeTempDir('secrets');
  const path = join(dir, 'users.db');
  const config = loadConfig({ DATABASE_URL: path, ...env });
  const db = openDatabase(config.database);
  try {
    await migrateToLatest(db);
    const app = await buildApp(config, { db, secrets: resolveSecrets(config, db) });
    const key = await createApiKey(db, { name: 'secrets' });
    const res = await app.inject({ method: 'POST', url: '/v2/users', headers: { authorization: basicAuth(key) }, payload: body });
    assert.equal(res.statusCode, 200, res.body);
    await app.close();
  } finally {
    await db.destroy();
  }
  return { dir, path };
}

describe('secret files of the embedded store (sqlite)', () => {
  after(cleanUpProcesses);

  it('a lost pii.keys is not replaced while users have encrypted data: the server refuses to start in one line', { timeout: 60_000 }, async () => {
    const { dir, path } = await storeWithUser({}, { ssn: '123-45-6789' });
    const keyFile = join(dir, 'pii.keys');
    assert.ok(existsSync(keyFile), 'generated for the new store');
    rmSync(keyFile);
    const result = await cli(['serve'], { DATABASE_URL: path, PORT: '0', LOG_LEVEL: 'warn' });
    assertOneLineError(result, /pii\.keys is missing, but the database holds personal data encrypted under its keys: restore the file or set PII_KEYS/);
    assert.equal(existsSync(keyFile), false, 'no new key was written');
  });

  it('started with PII_KEYS once, then without it: refused, no key file written', { timeout: 60_000 }, async () => {
    const { dir, path } = await storeWithUser({ PII_KEYS }, { birth_date: { year: 1980, month: 1, day: 2 } });
    assert.equal(existsSync(join(dir, 'pii.keys')), false);
    const config = loadConfig({ DATABASE_URL: path });
    const db = openDatabase(config.database);
    try {
      assert.throws(() => resolveSecrets(config, db), /pii\.keys is missing/);
      assert.equal(existsSync(join(dir, 'pii.keys')), false);
      // With the key given again, it starts.
      assert.equal(resolveSecrets(loadConfig({ DATABASE_URL: path, PII_KEYS }), db).piiKeys[0]?.id, 'given1');
    } finally {
      await db.destroy();
    }
  });

  it('a store whose users hold no encrypted data gets a new pii.keys', async () => {
    const { dir, path } = await storeWithUser({ PII_KEYS }, { first_name: 'Plain' });
    const config = loadConfig({ DATABASE_URL: path });
    const db = openDatabase(config.database);
    try {
      assert.equal(await countUsers(db), 1);
      resolveSecrets(config, db);
      assert.ok(existsSync(join(dir, 'pii.keys')));
    } finally {
      await db.destroy();
    }
  });

  it('a lost user-token.secret is replaced, and the server says that earlier tokens and cursors no longer verify', { timeout: 60_000 }, async () => {
    const { dir, path } = await storeWithUser({}, { first_name: 'Token' });
    const secretFile = join(dir, 'user-token.secret');
    const before = readFileSync(secretFile, 'utf8');
    rmSync(secretFile);
    const server = await startServer({ DATABASE_URL: path });
    try {
      assert.match(server.stdout(), /"level":40,.*user-token\.secret was missing and a new one was generated/);
      assert.notEqual(readFileSync(secretFile, 'utf8'), before);
    } finally {
      assert.deepEqual(await stopServer(server), { code: 0, signal: null });
    }
  });
});
