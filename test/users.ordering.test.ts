import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nowMicros } from '../src/clock.js';
import { uuidv7At } from '../src/users/users.ids.js';
import { createTestApi, STORES, type TestApi } from './helpers/app.js';

const CREATES = 4000;
const CONCURRENCY = 64;

describe('ids and timestamps', () => {
  it('a UUIDv7 carries its instant: the millisecond in 48 bits, the fraction of it in rand_a', () => {
    for (const micros of [0, 999, 1_700_000_000_000_000, 1_700_000_000_000_999, 1_700_000_000_123_456]) {
      const id = uuidv7At(micros);
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const hex = id.replaceAll('-', '');
      assert.equal(Number.parseInt(hex.slice(0, 12), 16), Math.floor(micros / 1000));
      // RFC 9562 §6.2 method 3: rand_a holds the fraction of the millisecond, scaled to 4096 steps.
      const fraction = Number.parseInt(hex.slice(13, 16), 16);
      assert.ok(fraction / 4096 <= (micros % 1000) / 1000 && (micros % 1000) / 1000 < (fraction + 1) / 4096, `${micros}: ${fraction}`);
    }
  });

  it('consecutive readings of the clock, and their ids, strictly increase', () => {
    let previous = { micros: 0, id: '' };
    for (let i = 0; i < 100_000; i++) {
      const micros = nowMicros();
      const id = uuidv7At(micros);
      assert.ok(micros > previous.micros, `reading ${i}: ${micros} after ${previous.micros}`);
      assert.ok(id > previous.id, `id ${i}: ${id} after ${previous.id}`);
      previous = { micros, id };
    }
  });
});

for (const store of STORES) {
  describe(`creation order (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it(`${CREATES} creates as fast as the store takes them: a full walk has increasing ids and created_at`, async () => {
      let started = 0;
      const worker = async () => {
        while (started++ < CREATES) {
          const res = await api.request({ method: 'POST', url: '/v2/users', payload: {} });
          assert.equal(res.status, 200, res.body);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));

      const walked: Array<{ id: string; created_at: string }> = [];
      let url: string | undefined = '/v2/users?limit=200';
      while (url) {
        const page = await api.request({ method: 'GET', url });
        assert.equal(page.status, 200, page.body);
        walked.push(...page.json.results);
        url = page.json.next ? new URL(page.json.next).pathname + new URL(page.json.next).search : undefined;
      }
      assert.equal(walked.length, CREATES);
      for (let i = 1; i < walked.length; i++) {
        const [a, b] = [walked[i - 1]!, walked[i]!];
        assert.ok(a.id < b.id, `ids in order at ${i}: ${a.id}, ${b.id}`);
        assert.ok(a.created_at <= b.created_at, `created_at non-decreasing at ${i}: ${a.created_at}, ${b.created_at}`);
        // The id's time bits and created_at are one reading: the id names created_at's millisecond.
        assert.equal(new Date(Number.parseInt(b.id.replaceAll('-', '').slice(0, 12), 16)).toISOString().slice(0, 23), b.created_at.slice(0, 23));
      }
    });
  });
}
