import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { publicRandomBytes } from '../src/random.js';

describe('publicRandomBytes (IVs and ids from a pool)', () => {
  it('gives each draw bytes of its own, across refills of the pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const bytes = publicRandomBytes(12);
      assert.equal(bytes.length, 12);
      seen.add(bytes.toString('hex'));
    }
    assert.equal(seen.size, 2000, 'a draw repeated another (an IV reused)');
  });

  it('never rewrites a view it handed out: a refill takes a new buffer', () => {
    const early = publicRandomBytes(16);
    const copy = Buffer.from(early);
    for (let i = 0; i < 1000; i++) publicRandomBytes(12); // several refills
    assert.deepEqual(early, copy);
  });

  it('serves draws larger than the pool', () => {
    const big = publicRandomBytes(10_000);
    assert.equal(big.length, 10_000);
    assert.notDeepEqual(big.subarray(0, 32), Buffer.alloc(32));
  });
});
