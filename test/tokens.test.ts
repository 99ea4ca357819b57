import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { IssuedKey } from '../src/keys/keys.service.js';
import { deriveKey } from '../src/secrets.js';
import { createTestApi, createUser, STORES, TEST_SECRET, type TestApi } from './helpers/app.js';

/** The key the app signs user tokens with: USER_TOKEN_SECRET itself, as a client's own service would use it. */
const TOKEN_KEY = new TextEncoder().encode(TEST_SECRET);
/** The key another deployment (with another secret) would sign with. */
const OTHER_KEY = new TextEncoder().encode('another-secret-another-secret-another-secret');
const CLAIMS = ['client_id', 'exp', 'fid', 'iat', 'iss', 'jti', 'sub', 'user_id'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;
const MISSING_ID = '0190a4e2-0000-7000-8000-000000000000';

const BAD_SIGNATURE = { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' };

const invalidPk = (id: string) => ({ user: [`Invalid pk "${id}" - object does not exist.`] });

async function verify(token: string, issuer = 'users-api'): Promise<JWTPayload> {
  const { payload, protectedHeader } = await jwtVerify(token, TOKEN_KEY, { algorithms: ['HS256'], issuer });
  assert.deepEqual(protectedHeader, { alg: 'HS256', typ: 'JWT' });
  return payload;
}

/** Checks every claim of a freshly minted token; `before`/`after` bracket the request in epoch seconds. */
function assertClaims(
  payload: JWTPayload,
  expected: { clientId: string; userId: string; issuer: string },
  window: { before: number; after: number },
): void {
  assert.deepEqual(Object.keys(payload).sort(), CLAIMS);
  assert.equal(payload.client_id, expected.clientId);
  assert.equal(payload.sub, expected.userId);
  assert.equal(payload.user_id, expected.userId);
  assert.equal(payload.iss, expected.issuer);
  assert.equal(typeof payload.iat, 'number');
  assert.ok(Number.isInteger(payload.iat));
  assert.ok(payload.iat! >= window.before && payload.iat! <= window.after, `iat ${payload.iat} not within the request`);
  assert.equal(payload.exp, payload.iat! + 3600);
  assert.match(String(payload.fid), UUID);
  assert.equal(typeof payload.jti, 'string');
  assert.ok(String(payload.jti).length >= 16, 'jti carries enough randomness');
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Signs `payload` as the app does (HS256, typ JWT), with `key`. */
const signToken = (payload: object, key: Uint8Array = TOKEN_KEY) =>
  new SignJWT({ ...payload }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key);

/** The token with its payload replaced by `payload` and the original signature kept. */
function withPayload(token: string, payload: object): string {
  const [header, , signature] = token.split('.');
  return `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;
}

function decodePayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

for (const store of STORES) {
  describe(`user tokens (${store})`, () => {
    let api: TestApi;
    const mint = (user: unknown, as?: IssuedKey) =>
      api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user } as object, as });
    const introspect = (userToken: string, as?: IssuedKey) =>
      api.request({ method: 'POST', url: '/v2/user-tokens/introspect', payload: { user_token: userToken }, as });

    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    it('POST /v2/users returns a token signed HS256 with the app key, with exactly the seed claims', async () => {
      const before = nowSeconds();
      const res = await api.request({ method: 'POST', url: '/v2/users', payload: { first_name: 'Sarah' } });
      const after = nowSeconds();
      assert.equal(res.status, 200, res.body);
      assert.match(res.json.user_token, JWT);
      assert.deepEqual(decodeProtectedHeader(res.json.user_token), { alg: 'HS256', typ: 'JWT' });
      const payload = await verify(res.json.user_token);
      assertClaims(payload, { clientId: api.tenant.client_id, userId: res.json.id, issuer: 'users-api' }, { before, after });
    });

    it('POST /v2/user-tokens returns {user_token} with the same claims for an existing user', async () => {
      const id = await createUser(api);
      const before = nowSeconds();
      const res = await mint(id);
      const after = nowSeconds();
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(Object.keys(res.json), ['user_token']);
      const payload = await verify(res.json.user_token);
      assertClaims(payload, { clientId: api.tenant.client_id, userId: id, issuer: 'users-api' }, { before, after });
    });

    it('every token has its own fid and jti', async () => {
      const created = await api.request({ method: 'POST', url: '/v2/users' });
      const id = created.json.id as string;
      const tokens = [created.json.user_token as string];
      for (let i = 0; i < 5; i++) tokens.push((await mint(id)).json.user_token);
      const payloads = await Promise.all(tokens.map((t) => verify(t)));
      assert.equal(new Set(tokens).size, tokens.length);
      assert.equal(new Set(payloads.map((p) => p.fid)).size, tokens.length, 'fid repeats');
      assert.equal(new Set(payloads.map((p) => p.jti)).size, tokens.length, 'jti repeats');
      for (const p of payloads) assert.notEqual(p.fid, p.jti);
      for (const p of payloads) assert.equal(p.user_id, id);
    });

    it('a token for an id given in upper case names the canonical id', async () => {
      const id = await createUser(api);
      const res = await mint(id.toUpperCase());
      assert.equal(res.status, 200, res.body);
      const payload = await verify(res.json.user_token);
      assert.equal(payload.sub, id);
      assert.equal(payload.user_id, id);
    });

    it('a token does not verify with any other key', async () => {
      const { json } = await api.request({ method: 'POST', url: '/v2/users' });
      await verify(json.user_token); // the control: the right key works
      for (const key of [
        OTHER_KEY,
        deriveKey(TEST_SECRET, 'cursor'),
        deriveKey(TEST_SECRET, 'user-token'),
      ]) {
        await assert.rejects(jwtVerify(json.user_token, key, { algorithms: ['HS256'] }), BAD_SIGNATURE);
      }
      // Nor when its payload is altered under the original signature.
      const forged = withPayload(json.user_token, { ...decodePayload(json.user_token), user_id: MISSING_ID });
      await assert.rejects(jwtVerify(forged, TOKEN_KEY, { algorithms: ['HS256'] }), BAD_SIGNATURE);
    });

    it('POST /v2/user-tokens without user is 400 "This field is required."', async () => {
      for (const payload of [{}, { usr: MISSING_ID }]) {
        const res = await api.request({ method: 'POST', url: '/v2/user-tokens', payload });
        assert.equal(res.status, 400, res.body);
        assert.deepEqual(res.json, { user: ['This field is required.'] });
      }
    });

    it('POST /v2/user-tokens for an unknown or malformed id is 400 Invalid pk', async () => {
      for (const id of [MISSING_ID, 'not-a-uuid', '', '123', `${MISSING_ID}x`, 'x'.repeat(300), '../users']) {
        const res = await mint(id);
        assert.equal(res.status, 400, `${id}: ${res.body}`);
        assert.deepEqual(res.json, invalidPk(id), id);
      }
    });

    it('POST /v2/user-tokens with a user that is not a string is 400 "Not a valid string."', async () => {
      const id = await createUser(api);
      for (const user of [123, true, [id], { id }, 1.5]) {
        const res = await mint(user);
        assert.equal(res.status, 400, `${JSON.stringify(user)}: ${res.body}`);
        assert.deepEqual(res.json, { user: ['Not a valid string.'] }, JSON.stringify(user));
      }
    });

    it('POST /v2/user-tokens for a deleted user is 400 Invalid pk', async () => {
      const id = await createUser(api);
      assert.equal((await mint(id)).status, 200);
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/users/${id}` })).status, 204);
      const res = await mint(id);
      assert.equal(res.status, 400, res.body);
      assert.deepEqual(res.json, invalidPk(id));
    });

    it('introspect: a fresh token is active with its user_id', async () => {
      const created = await api.request({ method: 'POST', url: '/v2/users' });
      const id = created.json.id as string;
      for (const token of [created.json.user_token as string, (await mint(id)).json.user_token as string]) {
        const payload = await verify(token);
        const res = await introspect(token);
        assert.equal(res.status, 200, res.body);
        assert.equal(res.json.active, true);
        assert.equal(res.json.user_id, id);
        assert.equal(res.json.client_id, api.tenant.client_id);
        assert.equal(res.json.exp, payload.exp);
        assert.equal(res.json.jti, payload.jti);
      }
    });

    it('introspect: every token of a deleted user becomes {"active": false}', async () => {
      const created = await api.request({ method: 'POST', url: '/v2/users' });
      const id = created.json.id as string;
      const tokens = [created.json.user_token as string, (await mint(id)).json.user_token as string];
      for (const token of tokens) assert.equal((await introspect(token)).json.active, true);
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/users/${id}` })).status, 204);
      for (const token of tokens) {
        const res = await introspect(token);
        assert.equal(res.status, 200, res.body);
        assert.deepEqual(res.json, { active: false });
      }
    });

    it('introspect: tampered, foreign-key, expired and malformed tokens are {"active": false}', async () => {
      const victim = await createUser(api);
      const { json } = await api.request({ method: 'POST', url: '/v2/users' });
      const token = json.user_token as string;
      assert.equal((await introspect(token)).json.active, true);
      const claims = decodePayload(token);
      const iat = nowSeconds();

      // The control: a token we sign ourselves with the app key and fresh claims is accepted,
      // so the rejections below are about what was changed, not about how we build tokens.
      const ours = await signToken({ ...claims, user_id: victim, sub: victim, iat, exp: iat + 3600 });
      assert.deepEqual((await introspect(ours)).json.active, true);

      // Alter the signature's first character: every bit of it is signature (the last one carries padding bits).
      const [head, body, signature = ''] = token.split('.');
      const altered = `${head}.${body}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
      const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${token.split('.')[1]}.`;
      const cases: Record<string, string> = {
        'payload changed under the signature': withPayload(token, { ...claims, user_id: victim, sub: victim }),
        'signature altered': altered,
        'signature removed': token.split('.').slice(0, 2).join('.') + '.',
        'alg none': none,
        'signed with another key': await signToken(claims, OTHER_KEY),
        'signed with the cursor key': await signToken(claims, deriveKey(TEST_SECRET, 'cursor')),
        expired: await signToken({ ...claims, iat: iat - 7200, exp: iat - 3600 }),
        'another issuer': await signToken({ ...claims, iss: 'someone-else' }),
        'another client': await signToken({ ...claims, client_id: MISSING_ID }),
        'not a JWT': 'not-a-token',
        empty: '',
      };
      for (const [name, bad] of Object.entries(cases)) {
        const res = await introspect(bad);
        assert.equal(res.status, 200, `${name}: ${res.body}`);
        assert.deepEqual(res.json, { active: false }, name);
      }
      assert.equal((await introspect(token)).json.active, true, 'the original token is still active');
    });

    // Both need the server's signing key to forge: hardening against a leaked key, not an open hole.
    it(
      'introspect: a correctly signed token whose user_id is not an id string is {"active": false}, not a 500',
      async () => {
        const iat = nowSeconds();
        for (const userId of [{ id: 'x' }, ['x'], 5, null, 'not-a-uuid']) {
          const forged = await signToken({
            client_id: api.tenant.client_id,
            iss: 'users-api',
            iat,
            exp: iat + 3600,
            user_id: userId,
          });
          const res = await introspect(forged);
          assert.equal(res.status, 200, `${JSON.stringify(userId)}: ${res.status} ${res.body}`);
          assert.deepEqual(res.json, { active: false });
        }
      },
    );

    it(
      'introspect: a correctly signed token without exp is not active (user tokens live one hour)',
      async () => {
        const id = await createUser(api);
        const iat = nowSeconds();
        const claims = {
          client_id: api.tenant.client_id,
          fid: MISSING_ID,
          iat,
          iss: 'users-api',
          jti: MISSING_ID,
          sub: id,
          user_id: id,
        };
        assert.equal((await introspect(await signToken({ ...claims, exp: iat + 3600 }))).json.active, true, 'control');
        assert.deepEqual((await introspect(await signToken(claims))).json, { active: false });
      },
    );

    it("introspect: another tenant's token is {\"active\": false}; its own tenant sees it active", async () => {
      const tenantB = await api.newTenant('tenant-b');
      const created = await api.request({ method: 'POST', url: '/v2/users', as: tenantB });
      assert.equal(created.status, 200);
      const token = created.json.user_token as string;
      const payload = await verify(token);
      assert.equal(payload.client_id, tenantB.client_id);
      assert.notEqual(payload.client_id, api.tenant.client_id);

      assert.deepEqual((await introspect(token)).json, { active: false });
      const own = await introspect(token, tenantB);
      assert.equal(own.json.active, true);
      assert.equal(own.json.user_id, created.json.id);

      // And the other way round.
      const mine = (await api.request({ method: 'POST', url: '/v2/users' })).json.user_token as string;
      assert.deepEqual((await introspect(mine, tenantB)).json, { active: false });
    });

    it('introspect: a body without user_token or with a non-string one is a 400 field error', async () => {
      const missing = await api.request({ method: 'POST', url: '/v2/user-tokens/introspect', payload: {} });
      assert.equal(missing.status, 400, missing.body);
      assert.deepEqual(missing.json, { user_token: ['This field is required.'] });
      const number = await api.request({ method: 'POST', url: '/v2/user-tokens/introspect', payload: { user_token: 1 } });
      assert.equal(number.status, 400, number.body);
      assert.deepEqual(number.json, { user_token: ['Not a valid string.'] });
    });
  });

  describe(`user tokens with USER_TOKEN_ISSUER (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store, { USER_TOKEN_ISSUER: 'https://issuer.example.test' });
    });
    after(() => api.close());

    it('puts the configured issuer in iss, for both ways of minting', async () => {
      const before = nowSeconds();
      const created = await api.request({ method: 'POST', url: '/v2/users' });
      const minted = await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: created.json.id } });
      const after = nowSeconds();
      assert.equal(minted.status, 200, minted.body);
      for (const token of [created.json.user_token as string, minted.json.user_token as string]) {
        const payload = await verify(token, 'https://issuer.example.test');
        assertClaims(
          payload,
          { clientId: api.tenant.client_id, userId: created.json.id, issuer: 'https://issuer.example.test' },
          { before, after },
        );
        await assert.rejects(verify(token, 'users-api'), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iss' });
      }
    });

    it('introspect accepts its own issuer and rejects the default one', async () => {
      const created = await api.request({ method: 'POST', url: '/v2/users' });
      const introspect = (token: string) =>
        api.request({ method: 'POST', url: '/v2/user-tokens/introspect', payload: { user_token: token } });
      assert.equal((await introspect(created.json.user_token)).json.active, true);
      const claims = decodePayload(created.json.user_token);
      const defaultIssuer = await signToken({ ...claims, iss: 'users-api' });
      assert.deepEqual((await introspect(defaultIssuer)).json, { active: false });
    });
  });
}
