// The API's timestamps: isoMicros against Date's own formatting, in any order of seconds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isoMicros, nowMicros, parseIsoMicros } from '../src/clock.js';

/** The same text by the plain route: Date's milliseconds, then the three digits below them. */
const reference = (micros: number) =>
  `${new Date(Math.floor(micros / 1000)).toISOString().slice(0, 23)}${String(micros % 1000).padStart(3, '0')}Z`;

/** 1970 to 2199, in microseconds (beyond 2255 they are no longer exact integers in a double). */
const instant = fc.integer({ min: 0, max: Date.UTC(2200, 0, 1) * 1000 - 1 });

describe('isoMicros', () => {
  it('formats every instant as Date does, whichever second it formatted before', () => {
    fc.assert(
      fc.property(fc.array(instant, { minLength: 1, maxLength: 20 }), (instants) => {
        for (const micros of instants) assert.equal(isoMicros(micros), reference(micros));
      }),
      { numRuns: 500 },
    );
  });

  it('gets the second right on both sides of its boundary, and back again', () => {
    const boundary = Date.UTC(2026, 11, 31, 23, 59, 59) * 1000 + 1_000_000; // 2027-01-01T00:00:00.000000Z
    for (const micros of [boundary - 1, boundary, boundary + 1, boundary - 1, boundary + 999_999, boundary + 1_000_000]) {
      assert.equal(isoMicros(micros), reference(micros));
    }
    assert.equal(isoMicros(boundary - 1), '2026-12-31T23:59:59.999999Z');
    assert.equal(isoMicros(boundary), '2027-01-01T00:00:00.000000Z');
  });

  it('is read back by parseIsoMicros, and the clock only goes forward', () => {
    fc.assert(fc.property(instant, (micros) => parseIsoMicros(isoMicros(micros)) === micros));
    const readings = Array.from({ length: 1000 }, () => nowMicros());
    for (let i = 1; i < readings.length; i++) assert.ok(readings[i]! > readings[i - 1]!);
    assert.equal(parseIsoMicros(isoMicros(readings[999]!)), readings[999]);
  });
});
