import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { importUsers } from '../src/users/users.import.js';
import { parsePiiKeys, PiiCipher } from '../src/pii/pii.cipher.js';
import { UsersRepository } from '../src/users/users.repository.js';
import { countUsers, createTestApi, STORES, TEST_PII_KEYS, type TestApi } from './helpers/app.js';

for (const store of STORES) {
  describe(`bulk import from NDJSON (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('imports valid lines as POST /v2/users would, and rejects invalid ones with their line and errors', async () => {
      const lines = [
        JSON.stringify({ first_name: 'Ada', phone_number: '(212) 555-5555', external_id: 'imported' }),
        '',
        JSON.stringify({ email: 'not-an-email', external_id: 'imported' }),
        '{broken',
        JSON.stringify([1]),
        JSON.stringify({ birth_date: { year: 1990, month: 2, day: 30 }, external_id: 'imported' }),
        ...Array.from({ length: 25 }, (_, i) => JSON.stringify({ external_id: 'imported', external_metadata: { i } })),
      ];
      const rejected: Array<[number, unknown]> = [];
      const batches: number[] = [];
      const before = await countUsers(api.db);
      const repo = new UsersRepository(api.db, new PiiCipher(parsePiiKeys(TEST_PII_KEYS)));
      const result = await importUsers(repo, Readable.from(lines.join('\n')), {
        clientId: api.tenant.client_id,
        batchSize: 10,
        onReject: (line, errors) => rejected.push([line, errors]),
        onProgress: (p) => batches.push(p.imported),
      });
      assert.deepEqual(result, { read: lines.length, imported: 26, rejected: 4 });
      assert.equal(await countUsers(api.db), before + 26);
      assert.deepEqual(batches, [10, 20, 26]);
      assert.deepEqual(rejected.map(([line]) => line), [3, 4, 5, 6]);
      assert.deepEqual(rejected[0]?.[1], { email: ['Enter a valid email address.'] });
      assert.match(String((rejected[1]?.[1] as { detail: string }).detail), /^JSON parse error - /);
      assert.deepEqual(rejected[2]?.[1], { non_field_errors: ['Invalid data. Expected a dictionary, but got list.'] });
      assert.deepEqual(rejected[3]?.[1], { birth_date: { non_field_errors: ['Enter a valid date.'] } });

      const page = await api.request({ method: 'GET', url: '/v2/users?external_id=imported&limit=200' });
      assert.equal(page.json.results.length, 26);
      assert.equal(page.json.results[0].phone_number, '+12125555555');
      assert.deepEqual(
        page.json.results.slice(1).map((u: { external_metadata: { i: number } }) => u.external_metadata.i),
        Array.from({ length: 25 }, (_, i) => i),
      );
    });
  });
}
