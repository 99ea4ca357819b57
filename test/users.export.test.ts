// GET /v2/users/export.csv: the list's users as RFC 4180 CSV, nothing personal, formula-guarded, filtered and ordered.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startedStream } from '../src/http/streams.js';
import type { IssuedKey } from '../src/keys/keys.service.js';
import { parsePiiKeys, PiiCipher } from '../src/pii/pii.cipher.js';
import { csvField } from '../src/users/users.export.js';
import { UsersRepository } from '../src/users/users.repository.js';
import { newUserRow } from '../src/users/users.service.js';
import { createTestApi, createUser, follow, FULL_USER_BODY, STORES, TEST_PII_KEYS, type TestApi } from './helpers/app.js';
import { parseCsv, unguard } from './helpers/csv.js';
import { attempt, createLinkUser, report } from './helpers/link.js';

const HEADER = ['id', 'created_at', 'external_id', 'items_connected', 'employers_connected'];

interface ListedUser {
  id: string;
  created_at: string;
  external_id: string | null;
  items_connected: string[];
  employers_connected: string[];
}

/** External ids that CSV and spreadsheets get wrong when not quoted or guarded. */
const TRICKY_EXTERNAL_IDS = [
  'plain',
  'with,comma',
  'with "quotes"',
  '"',
  'line\r\nbreak',
  'lf\nonly',
  'cr\ronly',
  '=1+2',
  '=HYPERLINK("http://evil.example","click")',
  '+1',
  '-5',
  '@SUM(A1:A9)',
  '\t=tab first',
  '\r=cr first',
  "'already quoted",
  "''",
  '',
  'ünïcødé 😀',
  '  spaced  ',
  'a=b+c-d@e',
];

for (const store of STORES) {
  describe(`GET /v2/users/export.csv (${store})`, () => {
    let api: TestApi;
    let tenant: IssuedKey;
    let other: IssuedKey;
    let fullUser: string;

    const exportCsv = (query = '', as: IssuedKey = tenant) => api.request({ method: 'GET', url: `/v2/users/export.csv${query}`, as });

    /** The CSV's data rows, parsed and unguarded, after checking the header row and that no field starts a formula. */
    async function csvRows(query = '', as: IssuedKey = tenant): Promise<string[][]> {
      const res = await exportCsv(query, as);
      assert.equal(res.status, 200, res.body);
      assert.equal(res.headers['content-type'], 'text/csv; charset=utf-8');
      assert.equal(res.headers['content-disposition'], 'attachment; filename="users.csv"');
      const [header, ...rows] = parseCsv(res.body);
      assert.deepEqual(header, HEADER);
      for (const row of rows) {
        assert.equal(row.length, HEADER.length, JSON.stringify(row));
        for (const field of row) assert.doesNotMatch(field, /^[=+\-@\t\r]/, `a field that starts a formula: ${JSON.stringify(field)}`);
      }
      return rows.map((row) => row.map(unguard));
    }

    /** The same users through the JSON list, walked to the end, as CSV fields. */
    async function listedRows(query = '', as: IssuedKey = tenant): Promise<string[][]> {
      const users: ListedUser[] = [];
      let url: string | null = `/v2/users?limit=200${query}`;
      while (url) {
        const res = await api.request({ method: 'GET', url, as });
        assert.equal(res.status, 200, res.body);
        users.push(...res.json.results);
        url = res.json.next ? follow(res.json.next) : null;
      }
      return users.map((u) => [u.id, u.created_at, u.external_id ?? '', u.items_connected.join(';'), u.employers_connected.join(';')]);
    }

    before(async () => {
      api = await createTestApi(store);
      tenant = await api.newTenant('exporter');
      other = await api.newTenant('other');
      for (const externalId of TRICKY_EXTERNAL_IDS) await createUser(api, { external_id: externalId }, tenant);
      await createUser(api, {}, tenant);
      fullUser = await createUser(api, { ...FULL_USER_BODY, external_id: 'full' }, tenant);
      // Connected accounts give users items and employers, from the Link side: outside input too.
      for (const [item, employers] of [
        ['item_000000001', ['Walmart', 'Bob "the" Builder, Inc.']],
        ['=cmd|"/c calc"!A1', ['-2+3']],
      ] as const) {
        const user = await createLinkUser(api, { external_id: 'linked' }, tenant);
        const started = await attempt(api, user, { item });
        const res = await report(api, user, started.json.id, { connection: { status: 'connected' }, employers: [...employers] });
        assert.equal(res.status, 200, res.body);
      }
      for (let i = 0; i < 3; i++) await createUser(api, { external_id: `other-${i}`, first_name: 'Otto' }, other);
    });
    after(() => api.close());

    it('has one row per user, equal to the list: id, created_at, external_id, items and employers joined with ;', async () => {
      const rows = await csvRows();
      assert.equal(rows.length, TRICKY_EXTERNAL_IDS.length + 4);
      assert.deepEqual(rows, await listedRows());
      const linked = rows.filter((row) => row[2] === 'linked');
      assert.deepEqual(
        linked.map((row) => row.slice(3)),
        [
          ['item_000000001', 'Walmart;Bob "the" Builder, Inc.'],
          ['=cmd|"/c calc"!A1', '-2+3'],
        ],
      );
      assert.deepEqual(rows.map((row) => row[2]).slice(0, TRICKY_EXTERNAL_IDS.length), TRICKY_EXTERNAL_IDS);
    });

    it('quotes and guards fields as RFC 4180 and OWASP say', () => {
      const cases: Array<[string | null, string]> = [
        [null, ''],
        ['', ''],
        ['plain', 'plain'],
        ['a,b', '"a,b"'],
        ['say "hi"', '"say ""hi"""'],
        ['"', '""""'],
        ['two\r\nlines', '"two\r\nlines"'],
        ['lf\n', '"lf\n"'],
        ['=1+2', "'=1+2"],
        ['+1', "'+1"],
        ['-5', "'-5"],
        ['@SUM(A1)', "'@SUM(A1)"],
        ['\tx', "'\tx"],
        ['\r=x', `"'\r=x"`],
        ["'x", "''x"],
        ['=a,"b"', `"'=a,""b"""`],
        ['a=1', 'a=1'],
        [' =1', ' =1'],
      ];
      for (const [value, field] of cases) assert.equal(csvField(value), field, JSON.stringify(value));
    });

    it('never carries personal data', async () => {
      const res = await exportCsv();
      const full = (await api.request({ method: 'GET', url: `/v2/users/${fullUser}`, as: tenant })).json;
      const personal = [
        full.first_name,
        full.last_name,
        full.email,
        full.phone_number,
        full.ssn,
        '123456789',
        ...Object.values(full.address),
        String(full.birth_date.year),
        'In stage 1 of loan approval.',
        'Lender',
        '617-555-0100',
      ];
      // The id and created_at columns hold nothing but a UUID and a timestamp (whose digits could spell a birth year
      // or a postal code by chance); the other columns hold none of the personal values.
      const [, ...rows] = parseCsv(res.body);
      for (const row of rows) {
        assert.match(row[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.match(row[1]!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
        const rest = row.slice(2).join(',');
        for (const value of personal) assert.equal(rest.includes(String(value)), false, `the CSV holds ${value}`);
      }
      assert.ok(res.body.includes(fullUser));
    });

    it('reads no personal data at all: a user whose encrypted fields are damaged is exported, where the list fails', async () => {
      const damaged = await api.newTenant('damaged');
      const id = await createUser(api, { ssn: '123-45-6789', external_id: 'damaged' }, damaged);
      await api.db.updateTable('users').set({ pii: 'not-a-ciphertext' }).where('id', '=', id).execute();
      assert.equal((await api.request({ method: 'GET', url: '/v2/users', as: damaged })).status, 500);
      const rows = await csvRows('', damaged);
      assert.deepEqual(rows.map((row) => [row[0], row[2]]), [[id, 'damaged']]);
    });

    it("holds only the caller's client's users", async () => {
      const mine = await exportCsv();
      for (let i = 0; i < 3; i++) assert.equal(mine.body.includes(`other-${i}`), false);
      const theirs = await csvRows('', other);
      assert.deepEqual(theirs.map((row) => row[2]), ['other-0', 'other-1', 'other-2']);
      assert.deepEqual(theirs, await listedRows('', other));
      assert.equal((await exportCsv('?external_id=other-0')).body, `${HEADER.join(',')}\r\n`);
    });

    it('takes the list\'s external_id filter and ordering', async () => {
      const all = await csvRows();
      for (const query of [
        '?external_id=linked',
        '?external_id=%3D1%2B2',
        `?external_id=${encodeURIComponent('line\r\nbreak')}`,
        '?ordering=created_at',
        '?ordering=-created_at',
        '?external_id=linked&ordering=-created_at',
        '?external_id=nobody',
      ]) {
        assert.deepEqual(await csvRows(query), await listedRows(query.replace('?', '&')), query);
      }
      assert.deepEqual(await csvRows('?ordering=-created_at'), [...all].reverse());
      assert.deepEqual((await csvRows('?external_id=linked')).length, 2);
      assert.deepEqual(await csvRows('?external_id=nobody'), []);
    });

    it('bad input is a JSON 400 in DRF shape, never a CSV', async () => {
      for (const [query, body] of [
        ['?ordering=id', { ordering: ['"id" is not a valid choice. Use created_at (oldest first, the default) or -created_at (newest first).'] }],
        ['?external_id=%00', { external_id: ['Null characters are not allowed.'] }],
      ] as const) {
        const res = await exportCsv(query);
        assert.equal(res.status, 400, res.body);
        assert.match(String(res.headers['content-type']), /^application\/json/);
        assert.equal(res.headers['content-disposition'], undefined);
        assert.deepEqual(res.json, body);
      }
      const anonymous = await api.request({ method: 'GET', url: '/v2/users/export.csv', as: null });
      assert.equal(anonymous.status, 401);
      assert.deepEqual(anonymous.json, { detail: 'Authentication credentials were not provided.' });
    });

    it('walks page after page: 2,345 users equal the list in both orderings', async () => {
      const many = await api.newTenant('many');
      const repo = new UsersRepository(api.db, new PiiCipher(parsePiiKeys(TEST_PII_KEYS)));
      await repo.insertUsers(Array.from({ length: 2345 }, (_, i) => newUserRow(many.client_id, { external_id: i % 7 === 0 ? '=seven' : `user-${i}` })));
      for (const query of ['', '?ordering=-created_at', '?external_id=%3Dseven&ordering=-created_at']) {
        const rows = await csvRows(query, many);
        assert.deepEqual(rows, await listedRows(query.replace('?', '&'), many), query);
      }
      assert.equal((await csvRows('', many)).length, 2345);
      assert.equal(new Set((await csvRows('', many)).map((row) => row[0])).size, 2345);
    });

    it('is a static route: /v2/users/{id} still serves users, and near misses are 404', async () => {
      const id = await createUser(api, { external_id: 'by-id' }, tenant);
      const user = await api.request({ method: 'GET', url: `/v2/users/${id}`, as: tenant });
      assert.equal(user.status, 200);
      assert.equal(user.json.external_id, 'by-id');
      assert.equal((await exportCsv()).status, 200);
      assert.equal((await api.request({ method: 'GET', url: '/v2/users/export.csv/', as: tenant })).headers['content-type'], 'text/csv; charset=utf-8');
      for (const url of ['/v2/users/export.csvx', '/v2/users/EXPORT.CSV', '/v2/users/export', '/v2/users/export.csv.json']) {
        const res = await api.request({ method: 'GET', url, as: tenant });
        assert.equal(res.status, 404, url);
        assert.deepEqual(res.json, { detail: 'Not found.' }, url);
      }
      for (const method of ['POST', 'PATCH', 'DELETE'] as const) {
        const res = await api.request({ method, url: '/v2/users/export.csv', as: tenant, payload: method === 'DELETE' ? undefined : {} });
        assert.equal(res.status, 405, `${method}: ${res.body}`);
      }
      const head = await api.request({ method: 'HEAD', url: '/v2/users/export.csv', as: tenant });
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-type'], 'text/csv; charset=utf-8');
      assert.equal(head.body, '');
    });

    it('is documented in the OpenAPI document as text/csv with its query parameters', async () => {
      const doc = (await api.request({ method: 'GET', url: '/openapi.json', as: null })).json;
      const operation = doc.paths['/v2/users/export.csv']?.get;
      assert.ok(operation, 'no GET /v2/users/export.csv');
      assert.equal(operation.responses['200'].content['text/csv'].schema.type, 'string');
      assert.deepEqual(operation.parameters.map((p: { name: string }) => p.name).sort(), ['external_id', 'ordering']);
      for (const words of [HEADER.join(','), ';', 'RFC 4180', 'formula']) assert.ok(operation.description.includes(words), words);
    });
  });
}

describe('startedStream', () => {
  it('reads the first chunk before the response starts: a failure there rejects, later ones break the stream', async () => {
    async function* failing(at: number) {
      for (let i = 0; ; i++) {
        if (i === at) throw new Error(`chunk ${i} failed`);
        yield `chunk ${i}\n`;
      }
    }
    await assert.rejects(startedStream(failing(0)), /chunk 0 failed/);
    const stream = await startedStream(failing(2));
    const read: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) read.push(String(chunk));
      })(),
      /chunk 2 failed/,
    );
    assert.deepEqual(read.join(''), 'chunk 0\nchunk 1\n');
  });

  it('stops reading the source when the stream is destroyed, and reads nothing ahead of the reader', async () => {
    let produced = 0;
    let closed = false;
    async function* source() {
      try {
        for (;;) {
          produced++;
          yield 'x'.repeat(64 * 1024);
        }
      } finally {
        closed = true;
      }
    }
    const stream: Readable = await startedStream(source());
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(produced <= 3, `${produced} chunks made for a reader that took none`);
    stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(closed, true, 'the source was left open');
  });
});
