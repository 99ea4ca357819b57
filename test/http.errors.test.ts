import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestApi, createUser, snapshotUsers, STORES, type Response, type TestApi } from './helpers/app.js';

/** An error body in the documented shape, without internals. */
function assertCleanError(res: Response, status: number) {
  assert.equal(res.status, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.doesNotMatch(res.body, /\bat .+\.(ts|js):\d+|node_modules|FST_|stack|Error:/);
}

/** A body sent as given (not re-encoded), with a JSON content type unless told otherwise. */
function sendRaw(api: TestApi, method: 'POST' | 'PATCH', url: string, payload: string | Buffer, contentType = 'application/json') {
  return api.request({ method, url, payload, headers: { 'content-type': contentType } });
}

for (const store of STORES) {
  describe(`HTTP errors (${store})`, () => {
    let api: TestApi;
    let id: string;
    let snapshot: string;
    before(async () => {
      api = await createTestApi(store, { BODY_LIMIT: '65536' });
      id = await createUser(api, { first_name: 'Unchanged' });
      snapshot = await snapshotUsers(api.db);
    });
    after(async () => {
      // Nothing any test here sent was stored.
      assert.equal(await snapshotUsers(api.db), snapshot);
      await api.close();
    });

    const send = (method: 'POST' | 'PATCH', url: string, payload: string | Buffer, contentType?: string) =>
      sendRaw(api, method, url, payload, contentType);

    it('malformed JSON is 400 "JSON parse error - ..."', async () => {
      for (const body of ['{', '{"a":}', "{'a': 1}", '[1,2', 'nul', '{"a":1}}', '\u00ff']) {
        for (const [method, url] of [
          ['POST', '/v2/users'],
          ['PATCH', `/v2/users/${id}`],
          ['POST', '/v2/user-tokens'],
        ] as const) {
          const res = await send(method, url, body);
          assertCleanError(res, 400);
          assert.deepEqual(Object.keys(res.json), ['detail']);
          assert.match(res.json.detail, /^JSON parse error - ./);
        }
      }
    });

    it('a body that is not an object is 400 under non_field_errors', async () => {
      for (const [body, type] of [
        ['[]', 'list'],
        ['[{"first_name":"x"}]', 'list'],
        ['"text"', 'str'],
        ['42', 'int'],
        ['4.5', 'float'],
        ['true', 'bool'],
        ['null', 'NoneType'],
      ] as const) {
        for (const [method, url] of [
          ['POST', '/v2/users'],
          ['PATCH', `/v2/users/${id}`],
        ] as const) {
          const res = await send(method, url, body);
          assertCleanError(res, 400);
          assert.deepEqual(res.json, { non_field_errors: [`Invalid data. Expected a dictionary, but got ${type}.`] });
        }
      }
    });

    it('a non-JSON content type is 415', async () => {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
        const res = await send('POST', '/v2/users', 'first_name=x', type);
        assertCleanError(res, 415);
        assert.deepEqual(res.json, { detail: `Unsupported media type "${type}" in request.` });
      }
    });

    it('JSON in a charset other than UTF-8 is 415; UTF-8 spelled any common way is read (and validated)', async () => {
      for (const type of ['application/json; charset=utf-16', 'application/json; charset=latin1', 'application/json; charset=']) {
        const res = await send('POST', '/v2/users', '{"first_name":"x"}', type);
        assertCleanError(res, 415);
        assert.deepEqual(res.json, { detail: `Unsupported media type "${type}" in request.` });
      }
      for (const type of ['application/json; charset=UTF-8', 'application/json; charset="utf-8"', 'application/json;charset=utf8']) {
        const res = await send('POST', '/v2/users', '{"first_name":5}', type);
        assertCleanError(res, 400);
        assert.deepEqual(res.json, { first_name: ['Not a valid string.'] }, type);
      }
    });

    it('an oversized body is 413', async () => {
      const big = JSON.stringify({ external_metadata: 'x'.repeat(70_000) });
      for (const [method, url] of [
        ['POST', '/v2/users'],
        ['PATCH', `/v2/users/${id}`],
      ] as const) {
        const res = await send(method, url, big);
        assertCleanError(res, 413);
        assert.match(res.json.detail, /^Request body is too large/);
      }
    });

    it('a wrong method is 405 with an Allow header', async () => {
      for (const [method, url, allow] of [
        ['PUT', '/v2/users', 'GET, HEAD, POST'],
        ['DELETE', '/v2/users', 'GET, HEAD, POST'],
        ['POST', `/v2/users/${id}`, 'GET, HEAD, PATCH, DELETE'],
        ['PUT', `/v2/users/${id}`, 'GET, HEAD, PATCH, DELETE'],
        ['GET', '/v2/user-tokens', 'POST'],
      ] as const) {
        const res = await api.request({ method, url });
        assertCleanError(res, 405);
        assert.deepEqual(res.json, { detail: `Method "${method}" not allowed.` });
        assert.equal(res.headers.allow, allow);
      }
    });

    it('garbage paths are 404 "Not found."', async () => {
      for (const url of ['/', '/v1/users', '/v2', '/v2/', '/v2/userz', '/v2/users/a/b', '/%zz', '/v2/users/%E0%A4%A', '/..%2f..%2fetc/passwd', `/${'a'.repeat(10_000)}`]) {
        const res = await api.request({ method: 'GET', url });
        assertCleanError(res, 404);
        assert.deepEqual(res.json, { detail: 'Not found.' }, url);
      }
    });

    it('an X-Request-Id that is not a plain token (spaces, control characters, over 128 characters) is replaced', async () => {
      for (const given of ['has space', 'line\tbreak', 'x'.repeat(129), '{"json":1}', 'é']) {
        const res = await api.request({ method: 'GET', url: `/v2/users/${id}`, headers: { 'x-request-id': given } });
        assert.equal(res.status, 200);
        assert.match(String(res.headers['x-request-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, JSON.stringify(given));
      }
      const traced = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${id}`, headers: { 'x-request-id': traced } })).headers['x-request-id'], traced);
      assert.equal((await api.request({ method: 'GET', url: `/v2/users/${id}`, headers: { 'x-request-id': 'x'.repeat(128) } })).headers['x-request-id'], 'x'.repeat(128));
    });

    it('every response carries an X-Request-Id, echoed from the request when given', async () => {
      const res = await api.request({ method: 'GET', url: `/v2/users/${id}`, headers: { 'x-request-id': 'abc-123' } });
      assert.equal(res.headers['x-request-id'], 'abc-123');
      const fresh = await api.request({ method: 'GET', url: '/nothing' });
      assert.match(String(fresh.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    });
  });

  describe(`odd input never gets a 5xx (${store})`, () => {
    let api: TestApi;
    let id: string;
    before(async () => {
      api = await createTestApi(store);
      id = await createUser(api);
    });
    after(() => api.close());
    const send = (method: 'POST' | 'PATCH', url: string, payload: string) => sendRaw(api, method, url, payload);

    it('no bad input gets a 5xx: a sweep of odd bodies and queries', async () => {
      const bodies = [
        '{"first_name": {"$gt": ""}}',
        '{"__proto__": {"admin": true}}',
        '{"constructor": {"prototype": {"x": 1}}}',
        '{"birth_date": {"year": 1e400}}',
        '{"birth_date": {"year": 99999999999999999999}}',
        '{"external_metadata": ' + '['.repeat(5000) + ']'.repeat(5000) + '}',
        '{"address": {"country": null, "city": [], "state": {}}}',
        '{"email": "' + 'a'.repeat(300) + '@x.com"}',
        '{"phone_number": "+' + '9'.repeat(60) + '"}',
        '\ufeff{}',
      ];
      for (const body of bodies) {
        for (const [method, url] of [
          ['POST', '/v2/users'],
          ['PATCH', `/v2/users/${id}`],
          ['POST', '/v2/user-tokens'],
        ] as const) {
          const res = await send(method, url, body);
          assert.ok(res.status < 500, `${method} ${url} ${body.slice(0, 40)} -> ${res.status} ${res.body}`);
          if (res.status >= 400) assertCleanError(res, res.status);
        }
      }
      for (const query of ['?limit=1&limit=2', '?external_id=a&external_id=b', '?external_id=%00', '?limit=99999999999999999999', '?cursor=a&cursor=b', '?limit[]=1', '?external_id=' + 'x'.repeat(5000)]) {
        const res = await api.request({ method: 'GET', url: `/v2/users${query}` });
        assert.ok(res.status < 500, `${query} -> ${res.status} ${res.body}`);
        if (res.status >= 400) assertCleanError(res, res.status);
      }
    });

  });
}
