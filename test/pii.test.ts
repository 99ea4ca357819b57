import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { embeddedSqliteOf, openDatabase } from '../src/db/database.js';
import { WAL_SCRUB_DELAY_MS } from '../src/db/wal-scrub.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { createApiKey } from '../src/keys/keys.service.js';
import { newPiiKeyEntry, parsePiiKeys, PiiCipher, PiiCorruptError } from '../src/pii/pii.cipher.js';
import { resolveSecrets } from '../src/secrets.js';
import { UsersRepository } from '../src/users/users.repository.js';
import { basicAuth, createTestApi, createUser, STORES, TEST_PII_KEYS, type TestApi } from './helpers/app.js';

const PLANTED_SSN = '987-65-4329';
const PLANTED_DIGITS = '987654329';

describe('PII cipher', () => {
  const cipher = new PiiCipher(parsePiiKeys(TEST_PII_KEYS));

  it('round-trips, uses a fresh IV each time and names its key', () => {
    const a = cipher.encrypt(PLANTED_SSN, 'c/u/ssn');
    const b = cipher.encrypt(PLANTED_SSN, 'c/u/ssn');
    assert.notEqual(a, b);
    assert.match(a, /^v1\.test2\./);
    assert.equal(cipher.decrypt(a, 'c/u/ssn'), PLANTED_SSN);
    assert.ok(!a.includes(PLANTED_SSN) && !a.includes(PLANTED_DIGITS));
  });

  it('refuses a ciphertext moved to another row or column, or tampered with', () => {
    const sealed = cipher.encrypt(PLANTED_SSN, 'c/u1/ssn');
    assert.throws(() => cipher.decrypt(sealed, 'c/u2/ssn'));
    assert.throws(() => cipher.decrypt(sealed, 'c/u1/birth_date'));
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3] ?? '', 'base64url');
    body[0] = (body[0] ?? 0) ^ 1;
    parts[3] = body.toString('base64url');
    assert.throws(() => cipher.decrypt(parts.join('.'), 'c/u1/ssn'));
  });

  it('refuses a ciphertext whose tag was cut short (GCM would accept 4 bytes), or that is not one at all', () => {
    const parts = cipher.encrypt(PLANTED_SSN, 'ctx').split('.');
    for (const bytes of [4, 8, 12, 15]) {
      const cut = [...parts.slice(0, 4), Buffer.from(parts[4] ?? '', 'base64url').subarray(0, bytes).toString('base64url')].join('.');
      assert.throws(() => cipher.decrypt(cut, 'ctx'), PiiCorruptError, `a ${bytes}-byte tag`);
    }
    for (const garbage of ['', 'v1', 'v2.test2.a.b.c', 'v1.test2.a.b']) assert.throws(() => cipher.decrypt(garbage, 'ctx'), PiiCorruptError);
  });

  it('decrypts with any listed key, encrypts with the first, and reports stale ciphertexts', () => {
    const old = new PiiCipher(parsePiiKeys(TEST_PII_KEYS.split(',')[1] ?? ''));
    const sealedOld = old.encrypt(PLANTED_SSN, 'ctx');
    assert.equal(cipher.decrypt(sealedOld, 'ctx'), PLANTED_SSN);
    assert.equal(cipher.isStale(sealedOld), true);
    assert.equal(cipher.isStale(cipher.encrypt('x', 'ctx')), false);
    const unrelated = new PiiCipher(parsePiiKeys(newPiiKeyEntry('other')));
    assert.throws(() => unrelated.decrypt(sealedOld, 'ctx'));
  });

  it('makes new keys with distinct ids, even on the same day, that PII_KEYS accepts together', () => {
    const [first, second] = [newPiiKeyEntry(), newPiiKeyEntry()];
    const keys = parsePiiKeys(`${second},${first}`);
    assert.equal(keys.length, 2);
    assert.notEqual(keys[0]?.id, keys[1]?.id);
    for (const key of keys) assert.match(key.id, /^k\d{8}-[0-9a-f]{6}$/);
  });

  it('rejects malformed PII_KEYS with a message naming it', () => {
    for (const bad of ['', 'nokey', 'k:' + Buffer.alloc(16).toString('base64'), 'a:b:c', `k:${Buffer.alloc(32).toString('base64')},k:${Buffer.alloc(32).toString('base64')}`]) {
      assert.throws(() => parsePiiKeys(bad), /PII_KEYS/);
    }
  });
});

for (const store of STORES) {
  describe(`personal data at rest (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('stores ssn and birth_date only as ciphertext, and serves them in clear', async () => {
      const id = await createUser(api, { ssn: PLANTED_SSN, birth_date: { year: 1971, month: 7, day: 13 } });
      const row = await api.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      const stored = JSON.stringify(row);
      assert.ok(!stored.includes(PLANTED_SSN) && !stored.includes(PLANTED_DIGITS), 'SSN stored in clear');
      assert.ok(!stored.includes('1971'), 'birth year stored in clear');
      assert.match(String(row.pii), /^v1\.test2\./);
      const { json } = await api.request({ method: 'GET', url: `/v2/users/${id}` });
      assert.equal(json.ssn, PLANTED_SSN);
      assert.deepEqual(json.birth_date, { year: 1971, month: 7, day: 13 });
    });

    it('rotation: rows under an old key are re-encrypted under the first key, and still read the same', async () => {
      const oldOnly = new UsersRepository(api.db, new PiiCipher(parsePiiKeys(TEST_PII_KEYS.split(',')[1] ?? '')));
      const current = new UsersRepository(api.db, new PiiCipher(parsePiiKeys(TEST_PII_KEYS)));
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const id = await createUser(api);
        ids.push(id);
        const row = await current.findUserById(api.tenant.client_id, id);
        assert.ok(row);
        // Rewrite as an older deployment (key "test1" first) would have written it.
        assert.ok(await oldOnly.updateUser({ ...row, ssn: `00000000${i}`, version: row.version + 1 }, row.version));
      }
      const keysOf = async () =>
        (await api.db.selectFrom('users').select('pii').where('id', 'in', ids).execute()).map((r) => String(r.pii).split('.')[1]);
      assert.deepEqual(new Set(await keysOf()), new Set(['test1']));
      let after: Parameters<UsersRepository['reencryptBatch']>[0];
      let rewritten = 0;
      do {
        const batch = await current.reencryptBatch(after, 3);
        rewritten += batch.rewritten;
        after = batch.last;
      } while (after);
      assert.ok(rewritten >= 7);
      assert.deepEqual(new Set(await keysOf()), new Set(['test2']));
      for (const [i, id] of ids.entries()) {
        const { json } = await api.request({ method: 'GET', url: `/v2/users/${id}` });
        assert.equal(json.ssn, `00000000${i}`);
      }
    });
  });
}

/** Which of `needles` occur in which files of `dir`, as "needle in file" (the database, its -wal and -shm, the key files). */
function findInFiles(dir: string, needles: readonly string[]): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const bytes = readFileSync(join(dir, name));
    for (const needle of needles) if (bytes.includes(Buffer.from(needle))) found.push(`${needle} in ${name}`);
  }
  return found;
}

/** An app on a SQLite file in `dir` (secrets generated beside it), with one key and its request headers. */
async function appOnFile(dir: string) {
  // Load shedding has its own tests; on a busy machine it would only add noise here.
  const config = loadConfig({ DATABASE_URL: join(dir, 'users.db'), MAX_EVENT_LOOP_DELAY_MS: '0' });
  const db = openDatabase(config.database);
  await migrateToLatest(db);
  const app = await buildApp(config, { db, secrets: resolveSecrets(config) });
  const key = await createApiKey(db, { name: 'files' });
  return { config, db, app, key, headers: { authorization: basicAuth(key), 'content-type': 'application/json' } };
}

describe('a planted SSN appears nowhere in the SQLite files in clear (sqlite)', () => {
  it('database, WAL and key files hold no clear SSN after creates, updates and checkpoints', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'users-api-pii-'));
    try {
      const { config, db, app, key, headers } = await appOnFile(dir);
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const res = await app.inject({ method: 'POST', url: '/v2/users', headers, payload: { ssn: PLANTED_SSN, first_name: `n${i}` } });
        assert.equal(res.statusCode, 200, res.body);
        ids.push(res.json().id);
      }
      const patched = await app.inject({ method: 'PATCH', url: `/v2/users/${ids[0]}`, headers, payload: { ssn: PLANTED_DIGITS } });
      assert.equal(patched.json().ssn, PLANTED_DIGITS);
      const scan = () => assert.deepEqual(findInFiles(dir, [PLANTED_SSN, PLANTED_DIGITS]), []);
      scan(); // WAL still holds the writes
      await app.close();
      await db.destroy(); // checkpoints the WAL into the main file
      scan();
      assert.ok(readdirSync(dir).includes('pii.keys'));
      assert.equal(statSync(join(dir, 'pii.keys')).mode & 0o777, 0o600);
      // The generated key is the one in use: a second start reads it back and decrypts the same rows.
      const again = openDatabase(config.database);
      const repo = new UsersRepository(again, new PiiCipher(resolveSecrets(config).piiKeys));
      assert.equal((await repo.findUserById(key.client_id, ids[1] ?? ''))?.ssn, PLANTED_SSN);
      await again.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deleted users leave no bytes behind in the SQLite files (sqlite)', () => {
  it(`within ${WAL_SCRUB_DELAY_MS} ms of a DELETE, the user's values are in neither the database nor its WAL`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'users-api-erasure-'));
    try {
      const { db, app, headers } = await appOnFile(dir);
      const send = async (method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) => {
        const res = await app.inject({ method, url, headers, payload });
        assert.ok(res.statusCode < 300, `${method} ${url}: ${res.statusCode} ${res.body}`);
        return res.body === '' ? undefined : res.json();
      };
      const others = async (n: number) => {
        for (let i = 0; i < n; i++) await send('POST', '/v2/users', { first_name: `other${i}`, external_metadata: { filler: 'f'.repeat(300) } });
      };
      // Values stored in clear (ssn and birth date are encrypted), of the user to be deleted.
      const deleted = { first_name: 'Erasmina', last_name: 'Goneworth', email: 'erasmina.goneworth@example.org', external_id: 'ext-Vanishd-4417' };
      await others(40);
      const deletedId = (await send('POST', '/v2/users', deleted)).id as string;
      await others(40);
      const needles = Object.values(deleted);
      // Into the database file too, as an automatic checkpoint would have done: secure_delete must clear it there.
      embeddedSqliteOf(db)!.connection.pragma('wal_checkpoint(TRUNCATE)');
      await others(10);
      assert.deepEqual(
        findInFiles(dir, needles).filter((found) => found.endsWith(' in users.db')),
        needles.map((needle) => `${needle} in users.db`),
        'every planted value is in the database file before',
      );

      /** Waits for `gone` to leave every file, for up to the scrub's delay and a generous margin. */
      const waitUntilGone = async (gone: string[], after: string) => {
        const writtenAt = Date.now();
        let left = findInFiles(dir, gone);
        while (left.length > 0 && Date.now() - writtenAt < WAL_SCRUB_DELAY_MS * 5 + 2000) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          left = findInFiles(dir, gone);
        }
        assert.deepEqual(left, [], `still in the files ${Date.now() - writtenAt} ms after the ${after}`);
      };
      await send('DELETE', `/v2/users/${deletedId}`);
      await waitUntilGone(needles, 'DELETE');
      // What is still a user's data is still there, and later writes bring nothing back.
      assert.notDeepEqual(findInFiles(dir, ['other0']), []);
      await others(40);
      assert.deepEqual(findInFiles(dir, needles), []);
      await app.close();
      await db.destroy();
      assert.deepEqual(findInFiles(dir, needles), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
