import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { importUsers } from '../src/users/users.import.js';
import { newId, uuidv7At } from '../src/users/users.ids.js';
import { isoMicros } from '../src/clock.js';
import { parsePiiKeys, PiiCipher } from '../src/pii/pii.cipher.js';
import { UsersRepository } from '../src/users/users.repository.js';
import { countUsers, createTestApi, FULL_USER_BODY, STORES, TEST_PII_KEYS, type TestApi } from './helpers/app.js';

/** `bytes` in pieces of `size`: lines, BOMs and UTF-8 sequences split across chunks, as a pipe delivers them. */
function* chunked(bytes: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

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
        bodyLimit: api.config.bodyLimit,
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

    /** Imports `input`; resolves with the result and each rejected line's number and errors. */
    async function runImport(input: Readable) {
      const rejected: Array<[number, unknown]> = [];
      const repo = new UsersRepository(api.db, new PiiCipher(parsePiiKeys(TEST_PII_KEYS)));
      const result = await importUsers(repo, input, {
        clientId: api.tenant.client_id,
        bodyLimit: api.config.bodyLimit,
        onReject: (line, errors) => rejected.push([line, errors]),
      });
      return { result, rejected };
    }

    it('reads each line as bytes under the API\'s body rules (BOM, strict UTF-8, size limit): every verdict is POST /v2/users\'s', async () => {
      const limit = api.config.bodyLimit;
      const atLimit = Buffer.from(JSON.stringify({ external_id: 'bytes', first_name: 'AtLimit' }));
      const lines = [
        Buffer.concat([UTF8_BOM, Buffer.from(JSON.stringify({ external_id: 'bytes', first_name: 'Bom' }))]),
        Buffer.concat([Buffer.from('{"external_id":"bytes","first_name":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
        // A BOM counts only at the start, as in a body.
        Buffer.concat([Buffer.from(' '), UTF8_BOM, Buffer.from('{"external_id":"bytes"}')]),
        Buffer.from(JSON.stringify({ external_id: 'bytes', first_name: 'x'.repeat(limit) })),
        Buffer.concat([atLimit, Buffer.alloc(limit - atLimit.length, ' ')]),
        Buffer.from(`${JSON.stringify({ external_id: 'bytes', first_name: 'Crlf' })}\r`),
        Buffer.from(JSON.stringify({ external_id: 'bytes', first_name: '\u00e9\u{1F600}' })),
      ];
      const before = await countUsers(api.db);
      const { result, rejected } = await runImport(Readable.from(chunked(Buffer.concat(lines.flatMap((line) => [line, Buffer.from('\n')])), 5)));
      const verdicts = new Map(rejected);

      for (const [i, line] of lines.entries()) {
        const res = await api.request({ method: 'POST', url: '/v2/users', payload: line, headers: { 'content-type': 'application/json' } });
        const verdict = verdicts.get(i + 1);
        if (res.status === 200) assert.equal(verdict, undefined, `line ${i + 1} rejected, the API took it: ${JSON.stringify(verdict)}`);
        else assert.deepEqual(verdict, res.json, `line ${i + 1}: the API answered ${res.status}`);
      }
      assert.deepEqual(
        rejected.map(([line]) => line),
        [2, 3, 4],
      );
      assert.deepEqual(verdicts.get(2), { detail: 'JSON parse error - Request body is not valid UTF-8.' });
      assert.deepEqual(verdicts.get(4), { detail: `Request body is too large. The limit is ${limit} bytes.` });
      assert.deepEqual(result, { read: lines.length, imported: 4, rejected: 3 });

      const page = await api.request({ method: 'GET', url: '/v2/users?external_id=bytes&limit=200' });
      const imported = page.json.results.slice(0, 4).map((u: { first_name: string }) => u.first_name);
      assert.deepEqual(imported, ['Bom', 'AtLimit', 'Crlf', '\u00e9\u{1F600}']);
      // Four imported, then four more through the API (the same accepted lines).
      assert.equal(await countUsers(api.db), before + 8);
      assert.equal(JSON.stringify(page.json).includes('\ufffd'), false, 'a replacement character was stored');
    });

    it('restores the id and created_at of an exported line (both or neither, and they must agree), and never overwrites a user', async () => {
      const exported = newId();
      const [second, third] = [newId(), newId()];
      const old = { id: uuidv7At(1_600_000_000_123_456), createdAt: isoMicros(1_600_000_000_123_456) };
      const line = (fields: object) => JSON.stringify({ external_id: 'restored', ...fields });
      const lines = [
        line({ id: exported.id, created_at: exported.createdAt, ...FULL_USER_BODY, external_id: 'restored', items_connected: ['item_1'] }),
        line({ id: old.id, created_at: old.createdAt }),
        line({ id: second.id }),
        line({ created_at: second.createdAt }),
        line({ id: second.id.toUpperCase(), created_at: second.createdAt }),
        line({ id: '8f0e4a52-1c1e-4b7e-9d5c-2f1a3e4b5c6d', created_at: second.createdAt }),
        line({ id: 42, created_at: 42 }),
        line({ id: second.id, created_at: third.createdAt }),
        line({ id: second.id, created_at: second.createdAt.replace(/\.\d{6}Z$/, 'Z') }),
        line({ id: second.id, created_at: '2023-02-30T00:00:00.000000Z' }),
        line({ id: second.id, created_at: '1969-12-31T23:59:59.999999Z' }),
        line({ id: second.id, created_at: second.createdAt, email: 'not-an-email' }),
        line({ id: exported.id, created_at: exported.createdAt }),
        line({ id: third.id, created_at: third.createdAt }),
      ];
      const { result, rejected } = await runImport(Readable.from(lines.join('\n')));
      const time = 'Enter a UTC time with microseconds, as exported: 2023-03-09T04:54:35.170468Z.';
      const notV7 = 'Enter a UUIDv7 in lower case, as exported.';
      const mismatch = 'This id was not made at created_at: an id (UUIDv7) carries its creation instant.';
      assert.deepEqual(rejected, [
        [3, { created_at: ['This field is required with id.'] }],
        [4, { id: ['This field is required with created_at.'] }],
        [5, { id: [notV7] }],
        [6, { id: [notV7] }],
        [7, { created_at: [time], id: [notV7] }],
        [8, { id: [mismatch] }],
        [9, { created_at: [time] }],
        [10, { created_at: [time] }],
        [11, { created_at: [time] }],
        [12, { email: ['Enter a valid email address.'] }],
        [13, { id: ['A user with this id exists already.'] }],
      ]);
      assert.deepEqual(result, { read: lines.length, imported: 3, rejected: 11 });

      const restored = await api.request({ method: 'GET', url: `/v2/users/${exported.id}` });
      assert.equal(restored.status, 200, restored.body);
      assert.equal(restored.json.created_at, exported.createdAt);
      assert.equal(restored.json.ssn, FULL_USER_BODY.ssn);
      assert.deepEqual(restored.json.address, FULL_USER_BODY.address);
      // The arrays are the accounts' (not exported): a restored user starts with none.
      assert.deepEqual(restored.json.items_connected, []);
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${old.id}` })).json.created_at, '2020-09-13T12:26:40.123456Z');
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${third.id}` })).status, 200);

      // Run again, the restored users are there already: each is refused, nothing is overwritten.
      await api.request({ method: 'PATCH', url: `/v2/users/${third.id}`, payload: { first_name: 'Changed' } });
      const again = await runImport(Readable.from([lines[1], lines[13], line({})].join('\n')));
      assert.deepEqual(again.result, { read: 3, imported: 1, rejected: 2 });
      assert.deepEqual(again.rejected, [
        [1, { id: ['A user with this id exists already.'] }],
        [2, { id: ['A user with this id exists already.'] }],
      ]);
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${third.id}` })).json.first_name, 'Changed');
    });

    it('a line far over the limit is rejected without being held in memory, and the lines around it are imported', async () => {
      const piece = Buffer.alloc(64 * 1024, 'x');
      const hugeBytes = 128 * 1024 * 1024;
      const rssBefore = process.memoryUsage.rss();
      let peak = rssBefore;
      // The same piece again and again: the input itself allocates nothing, and memory is sampled as it is read.
      async function* input() {
        yield Buffer.from(`${JSON.stringify({ external_id: 'huge', first_name: 'Before' })}\n{"external_id":"huge","first_name":"`);
        for (let sent = 0; sent < hugeBytes; sent += piece.length) {
          yield piece;
          peak = Math.max(peak, process.memoryUsage.rss());
        }
        yield Buffer.from(`"}\n${JSON.stringify({ external_id: 'huge', first_name: 'After' })}`);
        peak = Math.max(peak, process.memoryUsage.rss());
      }
      const { result, rejected } = await runImport(Readable.from(input()));
      const grown = Math.max(peak, process.memoryUsage.rss()) - rssBefore;
      assert.deepEqual(result, { read: 3, imported: 2, rejected: 1 });
      assert.deepEqual(rejected, [[2, { detail: `Request body is too large. The limit is ${api.config.bodyLimit} bytes.` }]]);
      const page = await api.request({ method: 'GET', url: '/v2/users?external_id=huge' });
      assert.deepEqual(page.json.results.map((u: { first_name: string }) => u.first_name), ['Before', 'After']);
      assert.ok(grown < hugeBytes / 2, `memory grew by ${Math.round(grown / 2 ** 20)} MiB reading a ${hugeBytes / 2 ** 20} MiB line`);
    });
  });
}
