// The CSV export streams in constant memory: 100,000 users, read over real HTTP in chunks that are dropped, while the
// server's memory is sampled. An export that built its body would hold the CSV's size; this one must stay far below.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { IssuedKey } from '../src/keys/keys.service.js';
import { parsePiiKeys, PiiCipher } from '../src/pii/pii.cipher.js';
import { UsersRepository } from '../src/users/users.repository.js';
import { newUserRow } from '../src/users/users.service.js';
import { basicAuth, createTestApi, STORES, TEST_PII_KEYS, type TestApi } from './helpers/app.js';

// A full garbage collection on demand, as --expose-gc gives (the test runner starts this file without it).
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const USERS = 100_000;
const BATCH = 5000;
/**
 * Long values, so that the CSV (58 MiB) dwarfs what streaming allocates and frees along the way (a young
 * generation that grows by 10 to 15 MiB while pages come and go, measured).
 */
const EMPLOYERS = JSON.stringify(
  ['Walmart Stores and Distribution Centers, Inc.', 'Bob "the" Builder Construction', 'Some Employer With A Long Name LLC'].map(
    (name) => `${name} ${'-'.repeat(100)}`,
  ),
);
const ITEMS = JSON.stringify(['item_000000001', 'item_000000002', 'item_000000003']);

for (const store of STORES) {
  describe(`the CSV export's memory (${store})`, () => {
    let api: TestApi;
    let tenant: IssuedKey;
    let base: string;

    before(async () => {
      api = await createTestApi(store);
      tenant = await api.newTenant('big');
      // The repository's bulk path (as users-api import), with the arrays accounts would have written.
      const repo = new UsersRepository(api.db, new PiiCipher(parsePiiKeys(TEST_PII_KEYS)));
      for (let done = 0; done < USERS; done += BATCH) {
        const rows = Array.from({ length: BATCH }, (_, i) => ({
          ...newUserRow(tenant.client_id, { external_id: `customer-${String(done + i).padStart(8, '0')}-${'x'.repeat(60)}` }),
          items_connected: ITEMS,
          employers_connected: EMPLOYERS,
        }));
        await repo.insertUsers(rows);
      }
      await api.app.listen({ port: 0, host: '127.0.0.1' });
      base = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    });
    after(() => api.close());

    it(`streams ${USERS.toLocaleString('en-US')} users with memory growing by a small part of the CSV's size`, async (t) => {
      // The server runs in this process. Garbage would blur the picture (V8 lets tens of MiB of it pile up before a
      // full collection), so each sample is taken after one: it measures what is held, as a buffered body would be.
      const live = () => {
        collectGarbage();
        const { heapUsed, external } = process.memoryUsage();
        return heapUsed + external;
      };
      const baseline = live();
      const rssBefore = process.memoryUsage.rss();
      let peak = baseline;
      let rssPeak = rssBefore;
      const sample = () => {
        peak = Math.max(peak, live());
        rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
      };
      // On a timer (a body being built before its first byte) and every 2 MiB read (a body being sent).
      const timer = setInterval(sample, 100);
      let bytes = 0;
      let sampledAt = 0;
      let lines = 0;
      let status = 0;
      let contentType: string | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          const req = request(`${base}/v2/users/export.csv`, { headers: { authorization: basicAuth(tenant) } }, (res) => {
            status = res.statusCode ?? 0;
            contentType = res.headers['content-type'];
            res.on('data', (chunk: Buffer) => {
              bytes += chunk.length;
              for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
              if (bytes - sampledAt >= 2 * 2 ** 20) {
                sampledAt = bytes;
                sample();
              }
            });
            res.on('end', resolve);
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end();
        });
      } finally {
        clearInterval(timer);
      }
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
      const grown = peak - baseline;
      t.diagnostic(`CSV ${mib(bytes)}, ${lines} lines; held ${mib(baseline)} before, at most ${mib(peak)} (+${mib(grown)}); RSS +${mib(rssPeak - rssBefore)}`);
      assert.equal(status, 200);
      assert.equal(contentType, 'text/csv; charset=utf-8');
      assert.equal(lines, USERS + 1, 'the header and one line per user');
      assert.ok(bytes > 50 * 2 ** 20, `the CSV is ${mib(bytes)}: too small to tell streaming from buffering`);
      assert.ok(grown < bytes / 5, `memory held grew by ${mib(grown)} streaming a ${mib(bytes)} CSV`);
      assert.ok(rssPeak - rssBefore < bytes / 2, `RSS grew by ${mib(rssPeak - rssBefore)} streaming a ${mib(bytes)} CSV`);
    });
  });
}
