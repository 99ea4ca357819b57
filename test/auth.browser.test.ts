// A 401 to a script (X-Requested-With: XMLHttpRequest) carries no Basic challenge, so a browser opens no login dialog.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { basicAuth, createTestApi, createUser, STORES, type Response, type TestApi } from './helpers/app.js';

const NOT_PROVIDED = { detail: 'Authentication credentials were not provided.' };
const INVALID_CREDENTIALS = { detail: 'Invalid username/password.' };

/** Every way to fail authentication, with the body DRF answers for it. */
function failures(api: TestApi): Array<[string, Record<string, string>, { detail: string }]> {
  const wrongSecret = basicAuth({ api_key_id: api.tenant.api_key_id, api_key_secret: 'wrong' });
  return [
    ['no credentials', {}, NOT_PROVIDED],
    ['another scheme', { authorization: 'Bearer abc' }, NOT_PROVIDED],
    ['no credentials after Basic', { authorization: 'Basic' }, { detail: 'Invalid basic header. No credentials provided.' }],
    ['spaces', { authorization: 'Basic a b' }, { detail: 'Invalid basic header. Credentials string should not contain spaces.' }],
    ['not base64', { authorization: 'Basic %%%' }, { detail: 'Invalid basic header. Credentials not correctly base64 encoded.' }],
    ['a wrong secret', { authorization: wrongSecret }, INVALID_CREDENTIALS],
    ['an unknown key', { authorization: basicAuth({ api_key_id: '0'.repeat(32), api_key_secret: 'x' }) }, INVALID_CREDENTIALS],
  ];
}

const SCRIPT = { 'x-requested-with': 'XMLHttpRequest' };

for (const store of STORES) {
  describe(`401 challenges for browsers and other clients (${store})`, () => {
    let api: TestApi;
    let userId: string;
    const get = (url: string, headers: Record<string, string>): Promise<Response> => api.request({ method: 'GET', url, as: null, headers });

    before(async () => {
      api = await createTestApi(store);
      userId = await createUser(api);
    });
    after(() => api.close());

    it('without X-Requested-With, every 401 challenges Basic, as before', async () => {
      for (const [label, headers, body] of failures(api)) {
        for (const url of ['/v2/users', `/v2/users/${userId}`]) {
          const res = await get(url, headers);
          assert.equal(res.status, 401, `${label}: ${res.body}`);
          assert.deepEqual(res.json, body, label);
          assert.equal(res.headers['www-authenticate'], 'Basic realm="api"', label);
        }
      }
    });

    it('with X-Requested-With: XMLHttpRequest (any case), the same 401 challenges XBasic, never Basic', async () => {
      for (const requestedWith of ['XMLHttpRequest', 'xmlhttprequest', 'XMLHTTPREQUEST']) {
        for (const [label, headers, body] of failures(api)) {
          const res = await get('/v2/users', { ...headers, 'x-requested-with': requestedWith });
          assert.equal(res.status, 401, `${label}: ${res.body}`);
          assert.deepEqual(res.json, body, label);
          const challenge = String(res.headers['www-authenticate']);
          assert.equal(challenge, 'XBasic realm="api"', label);
          // What makes a browser open its dialog: a challenge whose scheme is Basic (or Digest, NTLM, Negotiate).
          assert.doesNotMatch(challenge, /(^|,)\s*(basic|digest|ntlm|negotiate)\b/i, label);
        }
      }
    });

    it('other X-Requested-With values are ordinary clients: Basic', async () => {
      for (const requestedWith of ['fetch', 'com.example.app', 'XMLHttpRequest2']) {
        const res = await get('/v2/users', { 'x-requested-with': requestedWith });
        assert.equal(res.status, 401);
        assert.equal(res.headers['www-authenticate'], 'Basic realm="api"', requestedWith);
      }
    });

    it('a script with a valid key is served as any client; the Link side keeps its Bearer challenge', async () => {
      const ok = await api.request({ method: 'GET', url: `/v2/users/${userId}`, headers: SCRIPT });
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.headers['www-authenticate'], undefined);
      const link = await get('/v2/link/user', SCRIPT);
      assert.equal(link.status, 401);
      assert.match(String(link.headers['www-authenticate']), /^Bearer\b/);
    });
  });
}
