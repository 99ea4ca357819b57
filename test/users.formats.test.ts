import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { heldPhoneNumber, toE164 } from '../src/users/users.formats.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('toE164 (phone numbers, parsed once per request)', () => {
  it('answers the same for a number seen again, and for each of two alternating numbers', () => {
    for (let i = 0; i < 3; i++) {
      assert.equal(toE164('(212) 555-1234'), '+12125551234');
      assert.equal(toE164('+44 20 7183 8750'), '+442071838750');
      assert.equal(toE164('(212) 555-123'), undefined);
      assert.equal(toE164('+1 212 555 1234 ext. 5'), undefined);
    }
  });

  it('holds the last number only until the turn of the event loop that parsed it ends', async () => {
    toE164('(415) 555-2671');
    assert.equal(heldPhoneNumber(), '(415) 555-2671');
    await nextTurn();
    assert.equal(heldPhoneNumber(), undefined);
    // And again after it was forgotten once.
    assert.equal(toE164('(415) 555-2671'), '+14155552671');
    await nextTurn();
    assert.equal(heldPhoneNumber(), undefined);
  });
});
