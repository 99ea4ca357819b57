import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestApi, createUser, snapshotUsers, STORES, type TestApi } from './helpers/app.js';

for (const store of STORES) {
  describe(`field validation on create and update (${store})`, () => {
    let api: TestApi;
    let existing: string;
    before(async () => {
      api = await createTestApi(store);
      existing = await createUser(api, { first_name: 'Kept', email: 'kept@example.com' });
    });
    after(() => api.close());

    /** Sends `body` to create and to update; both must answer 400 with `errors` and store nothing. */
    async function rejects(body: unknown, errors: unknown) {
      const snapshot = await snapshotUsers(api.db);
      for (const [method, url] of [
        ['POST', '/v2/users'],
        ['PATCH', `/v2/users/${existing}`],
      ] as const) {
        const res = await api.request({ method, url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
        assert.equal(res.status, 400, `${method} ${JSON.stringify(body)} -> ${res.status} ${res.body}`);
        assert.deepEqual(res.json, errors, `${method} ${JSON.stringify(body)}`);
      }
      assert.equal(await snapshotUsers(api.db), snapshot, 'a rejected request changed stored data');
    }

    async function accepts(body: unknown) {
      const res = await api.request({ method: 'POST', url: '/v2/users', payload: body as object });
      assert.equal(res.status, 200, `${JSON.stringify(body)} -> ${res.body}`);
      return res.json.id as string;
    }

    it('email: must be valid', async () => {
      for (const email of ['not-an-email', 'a@b', 'a@@b.com', 'a b@c.com', '@example.com', 'x@-bad-.com']) {
        await rejects({ email }, { email: ['Enter a valid email address.'] });
      }
      await rejects({ email: '' }, { email: ['This field may not be blank.'] });
      for (const email of ['sarah@email.com', 'first.last+tag@sub.example.co.uk', 'x@münchen.de']) await accepts({ email });
    });

    it('phone_number: must be a real number', async () => {
      for (const phone_number of ['123', '+1 212 555 555', 'call me', '+99 1234567', '(212) 555-5555 ext. 12']) {
        await rejects({ phone_number }, { phone_number: ['Enter a valid phone number.'] });
      }
    });

    it('external_id: at most 100 characters (counted as characters, not bytes)', async () => {
      await rejects({ external_id: 'x'.repeat(101) }, { external_id: ['Ensure this field has no more than 100 characters.'] });
      await accepts({ external_id: 'x'.repeat(100) });
      await accepts({ external_id: '😀'.repeat(100) });
    });

    it('names and address lines are bounded', async () => {
      await rejects({ first_name: 'x'.repeat(151) }, { first_name: ['Ensure this field has no more than 150 characters.'] });
      await rejects(
        { address: { line1: 'x'.repeat(256) } },
        { address: { line1: ['Ensure this field has no more than 255 characters.'] } },
      );
    });

    it('birth_date: year >= 1900, month 1-12, day 1-31, integers', async () => {
      await rejects({ birth_date: { year: 1899 } }, { birth_date: { year: ['Ensure this value is greater than or equal to 1900.'] } });
      await rejects({ birth_date: { month: 13 } }, { birth_date: { month: ['Ensure this value is less than or equal to 12.'] } });
      await rejects({ birth_date: { month: 0 } }, { birth_date: { month: ['Ensure this value is greater than or equal to 1.'] } });
      await rejects({ birth_date: { day: 32 } }, { birth_date: { day: ['Ensure this value is less than or equal to 31.'] } });
      await rejects({ birth_date: { day: 1.5 } }, { birth_date: { day: ['A valid integer is required.'] } });
      await rejects({ birth_date: { year: '1990' } }, { birth_date: { year: ['A valid integer is required.'] } });
    });

    it('birth_date: a real, past calendar date when all three are given', async () => {
      await rejects({ birth_date: { year: 2001, month: 2, day: 29 } }, { birth_date: { non_field_errors: ['Enter a valid date.'] } });
      await rejects({ birth_date: { year: 1990, month: 4, day: 31 } }, { birth_date: { non_field_errors: ['Enter a valid date.'] } });
      const nextYear = new Date().getUTCFullYear() + 1;
      await rejects(
        { birth_date: { year: nextYear, month: 1, day: 1 } },
        { birth_date: { non_field_errors: ['Birth date cannot be in the future.'] } },
      );
      await accepts({ birth_date: { year: 2000, month: 2, day: 29 } });
      await accepts({ birth_date: { year: 1990, month: 2 } });
    });

    it('address.country: an ISO 3166-1 alpha-2 code', async () => {
      await rejects({ address: { country: 'XX' } }, { address: { country: ['"XX" is not a valid choice.'] } });
      await rejects({ address: { country: 'us' } }, { address: { country: ['"us" is not a valid choice.'] } });
      await rejects({ address: { country: 'USA' } }, { address: { country: ['"USA" is not a valid choice.'] } });
      await accepts({ address: { country: 'GB' } });
    });

    it('ssn: nine digits, hyphens allowed', async () => {
      for (const ssn of ['12345678', '1234567890', '123-45-678a', '123--45-6789', '-123456789']) {
        await rejects({ ssn }, { ssn: ['Enter a valid Social Security number.'] });
      }
      await accepts({ ssn: '123456789' });
      await accepts({ ssn: '123-45-6789' });
    });

    it('open_banking.end_user.phone: 10 or 11 digits, hyphens allowed', async () => {
      for (const phone of ['123456789', '123456789012', '555 123 4567', '(555)1234567']) {
        await rejects({ open_banking: { end_user: { phone } } }, { open_banking: { end_user: { phone: ['Enter a valid phone number.'] } } });
      }
      await accepts({ open_banking: { end_user: { phone: '555-123-4567' } } });
      await accepts({ open_banking: { end_user: { phone: '15551234567' } } });
    });

    it('external_metadata: up to 65536 bytes of JSON', async () => {
      await rejects(
        { external_metadata: { blob: 'x'.repeat(65_536) } },
        { external_metadata: ['Ensure this value has no more than 65536 bytes when encoded as JSON.'] },
      );
      await accepts({ external_metadata: { blob: 'x'.repeat(65_000) } });
    });

    it('wrong types get the DRF messages', async () => {
      await rejects({ first_name: 5 }, { first_name: ['Not a valid string.'] });
      await rejects({ external_id: ['a'] }, { external_id: ['Not a valid string.'] });
      await rejects({ email: true }, { email: ['Not a valid string.'] });
      await rejects({ address: 'Main St' }, { address: { non_field_errors: ['Invalid data. Expected a dictionary, but got str.'] } });
      await rejects({ birth_date: [1990] }, { birth_date: { non_field_errors: ['Invalid data. Expected a dictionary, but got list.'] } });
      await rejects(
        { open_banking: { end_user: 7 } },
        { open_banking: { end_user: { non_field_errors: ['Invalid data. Expected a dictionary, but got int.'] } } },
      );
    });

    it('reports every failing field at once', async () => {
      await rejects(
        { email: 'bad', phone_number: '1', address: { country: 'ZZ', city: 9 }, birth_date: { year: 1 }, ssn: 'x' },
        {
          email: ['Enter a valid email address.'],
          phone_number: ['Enter a valid phone number.'],
          ssn: ['Enter a valid Social Security number.'],
          address: { city: ['Not a valid string.'], country: ['"ZZ" is not a valid choice.'] },
          birth_date: { year: ['Ensure this value is greater than or equal to 1900.'] },
        },
      );
    });

    it('rejects NUL characters anywhere, external_metadata and its keys included', async () => {
      await rejects({ first_name: 'a\u0000b' }, { first_name: ['Null characters are not allowed.'] });
      await rejects({ address: { city: '\u0000' } }, { address: { city: ['Null characters are not allowed.'] } });
      await rejects({ external_metadata: { deep: ['ok', 'bad\u0000'] } }, { external_metadata: ['Null characters are not allowed.'] });
      await rejects({ external_metadata: { 'k\u0000': 1 } }, { external_metadata: ['Null characters are not allowed.'] });
      await rejects({ external_metadata: 'x\u0000' }, { external_metadata: ['Null characters are not allowed.'] });
    });

    it('rejects strings that are not valid Unicode (lone surrogates)', async () => {
      // JSON.stringify escapes lone surrogates as \udXXX, which is how a client would send them.
      await rejects({ last_name: 'a\ud800' }, { last_name: ['Surrogate characters are not allowed: U+D800.'] });
      await rejects({ external_metadata: { note: '\udfff' } }, { external_metadata: ['Surrogate characters are not allowed: U+DFFF.'] });
      await rejects({ external_id: 'x\udc00y' }, { external_id: ['Surrogate characters are not allowed: U+DC00.'] });
      // A proper pair is fine.
      const id = await accepts({ last_name: '\ud83d\ude00' });
      const { json } = await api.request({ method: 'GET', url: `/v2/users/${id}` });
      assert.equal(json.last_name, '😀');
    });

    it('bounds the nesting of external_metadata', async () => {
      const deep = (n: number): unknown => (n === 0 ? 'leaf' : { n: deep(n - 1) });
      await rejects({ external_metadata: deep(40) }, { external_metadata: ['Ensure this value is nested no more than 32 levels deep.'] });
      await accepts({ external_metadata: deep(30) });
    });

    it('rejects bodies that are not valid UTF-8', async () => {
      const snapshot = await snapshotUsers(api.db);
      const res = await api.request({
        method: 'POST',
        url: '/v2/users',
        payload: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 400);
      assert.match(res.json.detail, /^JSON parse error - /);
      assert.equal(await snapshotUsers(api.db), snapshot);
    });
  });
}
