import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { ADDRESS_KEYS, BIRTH_DATE_KEYS, createTestApi, createUser, FULL_USER_BODY, type Response, STORES, type TestApi, USER_KEYS } from './helpers/app.js';
import { ACCOUNT_KEYS, attempt, CONNECTION_KEYS, createLinkUser, linkRequest, report, type LinkUser } from './helpers/link.js';

// ajv-formats is CommonJS: under NodeNext its default import is the module object, whose .default is the plugin.
const addFormats = addFormatsModule.default;

/* eslint-disable @typescript-eslint/no-explicit-any -- the OpenAPI document is walked as plain JSON */
type Json = any;

type Method = 'get' | 'post' | 'patch' | 'delete';

/** Every operation of the API, and nothing else: the 405 catch-all routes must stay out of the document. */
const OPERATIONS: Record<string, Method[]> = {
  '/v2/users': ['get', 'post'],
  '/v2/users/{id}': ['delete', 'get', 'patch'],
  '/v2/users/export.csv': ['get'],
  '/v2/user-tokens': ['post'],
  '/v2/user-tokens/introspect': ['post'],
  '/v2/accounts': ['get'],
  '/v2/accounts/{id}': ['delete', 'get'],
  '/v2/link/user': ['get'],
  '/v2/link/accounts': ['get', 'post'],
  '/v2/link/accounts/{id}': ['patch'],
  '/v2/webhooks': ['get', 'post'],
  '/v2/webhooks/{id}': ['delete', 'get'],
  '/v2/webhooks/{id}/deliveries': ['get'],
  '/v2/webhooks/{id}/deliveries/{delivery}/retry': ['post'],
  '/v2/api-keys': ['get'],
};

/** The operations authenticated with a user token (Bearer) rather than an API key. */
const isLink = (path: string) => path.startsWith('/v2/link/');

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

const MISSING_ID = '0190a4e2-0000-7000-8000-000000000000';


/** A URI fragment holding the JSON pointer to `segments` (RFC 6901 escaping, then percent-encoding). */
function pointer(segments: string[]): string {
  return '#/' + segments.map((s) => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/');
}

/** Ajv (JSON Schema 2020-12, the dialect of OpenAPI 3.1) holding the whole served document as 'openapi.json'. */
function documentAjv(doc: Json): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv, ['uuid', 'date-time', 'uri']);
  ajv.addSchema(doc, 'openapi.json');
  return ajv;
}

/** The validator of the documented application/json body of `status` on `method path`. */
function responseValidator(ajv: Ajv2020, doc: Json, path: string, method: Method, status: number): ValidateFunction {
  const media = doc.paths?.[path]?.[method]?.responses?.[String(status)]?.content?.['application/json'];
  assert.ok(media?.schema, `${method.toUpperCase()} ${path} documents no application/json body for ${status}`);
  const ref = 'openapi.json' + pointer(['paths', path, method, 'responses', String(status), 'content', 'application/json', 'schema']);
  const validate = ajv.getSchema(ref);
  assert.ok(validate, `no schema at ${ref}`);
  return validate;
}

function assertValid(validate: ValidateFunction, body: unknown, label: string): void {
  const ok = validate(body);
  assert.ok(ok, `${label}: ${JSON.stringify(validate.errors)}\nbody: ${JSON.stringify(body)}`);
}

function assertInvalid(validate: ValidateFunction, body: unknown, label: string): void {
  assert.equal(validate(body), false, `${label} should be rejected: ${JSON.stringify(body)}`);
}

for (const store of STORES) {
  describe(`OpenAPI document and docs (${store})`, () => {
    let api: TestApi;
    let served: Response;
    let doc: Json;
    let ajv: Ajv2020;

    /** Checks a live response: status, JSON content type, and its body against the served document. */
    function assertDocumented(res: Response, path: string, method: Method, status: number): void {
      assert.equal(res.status, status, `${method.toUpperCase()} ${path}: ${res.body}`);
      assert.match(String(res.headers['content-type']), /^application\/json\b/);
      assertValid(responseValidator(ajv, doc, path, method, status), res.json, `${method.toUpperCase()} ${path} ${status}`);
    }

    before(async () => {
      api = await createTestApi(store);
      served = await api.request({ method: 'GET', url: '/openapi.json', as: null });
      doc = served.json;
      ajv = documentAjv(doc);
    });
    after(() => api.close());

    describe('the document', () => {
      it('is served at /openapi.json as JSON without credentials, declaring OpenAPI 3.1', () => {
        assert.equal(served.status, 200, served.body);
        assert.match(String(served.headers['content-type']), /^application\/json\b/);
        assert.match(doc.openapi, /^3\.1\.\d+$/);
        assert.equal(typeof doc.info?.title, 'string');
        assert.equal(typeof doc.info?.version, 'string');
      });

      it('validates as an OpenAPI 3.1 document (swagger-parser)', async () => {
        await SwaggerParser.validate(structuredClone(doc));
      });

      it('the OpenAPI validation can fail: broken copies of the document are rejected', async () => {
        const danglingRef = structuredClone(doc);
        danglingRef.paths['/v2/users/{id}'].get.responses['200'].content['application/json'].schema = {
          $ref: '#/components/schemas/NoSuchSchema',
        };
        await assert.rejects(SwaggerParser.validate(danglingRef));

        const badScheme = structuredClone(doc);
        badScheme.components.securitySchemes.basicAuth.type = 'password';
        await assert.rejects(SwaggerParser.validate(badScheme));

        const noDescription = structuredClone(doc);
        delete noDescription.paths['/v2/users'].post.responses['200'].description;
        await assert.rejects(SwaggerParser.validate(noDescription));

        const badParameter = structuredClone(doc);
        badParameter.paths['/v2/users'].get.parameters[0].in = 'body';
        await assert.rejects(SwaggerParser.validate(badParameter));
      });

      it('lists every endpoint with exactly its methods, and no internal 405 routes or other paths', () => {
        assert.deepEqual(Object.keys(doc.paths).sort(), Object.keys(OPERATIONS).sort());
        for (const [path, methods] of Object.entries(OPERATIONS)) {
          const documented = Object.keys(doc.paths[path]).filter((key) => HTTP_METHODS.includes(key));
          assert.deepEqual(documented.sort(), [...methods].sort(), path);
        }
      });

      it('declares every templated path parameter: the required uuid `id` on each {id} operation', () => {
        for (const [path, methods] of Object.entries(OPERATIONS)) {
          const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
          for (const method of methods) {
            const params = [...(doc.paths[path].parameters ?? []), ...(doc.paths[path][method].parameters ?? [])];
            const inPath = params.filter((p: Json) => p.in === 'path');
            assert.deepEqual(inPath.map((p: Json) => p.name).sort(), [...names].sort(), `${method} ${path}`);
            for (const p of inPath) assert.equal(p.required, true, `${method} ${path} ${p.name}`);
          }
        }
        for (const [path, methods] of Object.entries(OPERATIONS).filter(([path]) => path.endsWith('/{id}'))) {
          for (const method of methods) {
            const id = doc.paths[path][method].parameters.find((p: Json) => p.name === 'id');
            assert.deepEqual({ in: id.in, required: id.required, type: id.schema.type, format: id.schema.format }, {
              in: 'path',
              required: true,
              type: 'string',
              format: 'uuid',
            }, `${method} ${path}`);
          }
        }
      });

      it('declares the optional `limit`, `external_id`, `ordering` and `cursor` query parameters of the list', () => {
        const query = doc.paths['/v2/users'].get.parameters.filter((p: Json) => p.in === 'query');
        assert.deepEqual(query.map((p: Json) => p.name).sort(), ['cursor', 'external_id', 'limit', 'ordering']);
        const byName = Object.fromEntries(query.map((p: Json) => [p.name, p]));
        assert.equal(byName.limit.schema.type, 'integer');
        assert.equal(byName.limit.schema.minimum, 1);
        assert.equal(byName.external_id.schema.type, 'string');
        assert.equal(byName.cursor.schema.type, 'string');
        assert.deepEqual(byName.ordering.schema.enum, ['created_at', '-created_at']);
        for (const p of query) {
          assert.notEqual(p.required, true, p.name);
          assert.equal(typeof p.description, 'string', p.name);
        }
      });

      it('declares the query parameters of the accounts lists: limit, user, item, ordering and cursor; the Link list limit, ordering and cursor', () => {
        for (const [path, names] of [
          ['/v2/accounts', ['cursor', 'item', 'limit', 'ordering', 'user']],
          ['/v2/link/accounts', ['cursor', 'limit', 'ordering']],
        ] as const) {
          const query = doc.paths[path].get.parameters.filter((p: Json) => p.in === 'query');
          assert.deepEqual(query.map((p: Json) => p.name).sort(), names, path);
          for (const p of query) {
            assert.equal(p.schema.type, p.name === 'limit' ? 'integer' : 'string', `${path} ${p.name}`);
            assert.notEqual(p.required, true, `${path} ${p.name}`);
            assert.equal(typeof p.description, 'string', `${path} ${p.name}`);
          }
        }
        const idempotency = doc.paths['/v2/link/accounts'].post.parameters.find((p: Json) => p.in === 'header');
        assert.equal(idempotency?.name, 'idempotency-key');
      });

      it('declares the basicAuth scheme (http, basic) and applies it to every API-key operation', () => {
        const scheme = doc.components.securitySchemes.basicAuth;
        assert.equal(scheme.type, 'http');
        assert.equal(scheme.scheme, 'basic');
        assert.deepEqual(doc.security, [{ basicAuth: [] }]);
        for (const [path, methods] of Object.entries(OPERATIONS).filter(([path]) => !isLink(path))) {
          for (const method of methods) {
            // An operation-level `security` would override the global requirement (e.g. [] = anonymous).
            const own = doc.paths[path][method].security;
            if (own !== undefined) assert.deepEqual(own, [{ basicAuth: [] }], `${method} ${path}`);
          }
        }
      });

      it('declares the bearerAuth scheme (http, bearer) and requires it, alone, on every Link operation', () => {
        const scheme = doc.components.securitySchemes.bearerAuth;
        assert.equal(scheme.type, 'http');
        assert.equal(scheme.scheme, 'bearer');
        const link = Object.entries(OPERATIONS).filter(([path]) => isLink(path));
        assert.equal(link.length, 3);
        for (const [path, methods] of link) {
          for (const method of methods) assert.deepEqual(doc.paths[path][method].security, [{ bearerAuth: [] }], `${method} ${path}`);
        }
      });

      it('documents the error responses: 400 on create/update/list, 401 everywhere, 404 on the {id} routes', () => {
        const expected: Array<[string, Method, number]> = [
          ['/v2/users', 'post', 400],
          ['/v2/users', 'get', 400],
          ['/v2/users/{id}', 'patch', 400],
          ['/v2/user-tokens', 'post', 400],
          ['/v2/user-tokens/introspect', 'post', 400],
          ['/v2/users/{id}', 'get', 404],
          ['/v2/users/{id}', 'patch', 404],
          ['/v2/users/{id}', 'delete', 404],
          ['/v2/accounts', 'get', 400],
          ['/v2/accounts/{id}', 'get', 404],
          ['/v2/accounts/{id}', 'delete', 404],
          ['/v2/link/accounts', 'get', 400],
          ['/v2/link/accounts', 'post', 400],
          ['/v2/link/accounts', 'post', 422],
          ['/v2/link/accounts/{id}', 'patch', 400],
          ['/v2/link/accounts/{id}', 'patch', 404],
          ['/v2/link/accounts/{id}', 'patch', 409],
        ];
        for (const [path, methods] of Object.entries(OPERATIONS)) {
          for (const method of methods) expected.push([path, method, 401]);
        }
        for (const [path, method, status] of expected) {
          const response = doc.paths[path][method].responses[String(status)];
          assert.ok(response, `${method.toUpperCase()} ${path} does not document ${status}`);
          assert.equal(typeof response.description, 'string');
          assert.ok(response.content?.['application/json']?.schema, `${method.toUpperCase()} ${path} ${status} has no JSON body`);
        }
        // GET and DELETE take no body, so they cannot fail validation of one.
        assert.equal(doc.paths['/v2/users/{id}'].get.responses['400'], undefined);
        assert.equal(doc.paths['/v2/users/{id}'].delete.responses['400'], undefined);
      });

      it('has a User component schema with exactly the keys of the seed contract, all required', () => {
        const user = doc.components.schemas.User;
        assert.equal(user.type, 'object');
        assert.deepEqual(Object.keys(user.properties), USER_KEYS);
        assert.deepEqual([...user.required].sort(), [...USER_KEYS].sort());
        assert.equal(user.additionalProperties, false);
        assert.deepEqual(Object.keys(user.properties.address.properties), ADDRESS_KEYS);
        assert.deepEqual(Object.keys(user.properties.birth_date.properties), BIRTH_DATE_KEYS);
        assert.equal(user.properties.id.format, 'uuid');
        assert.equal(user.properties.created_at.format, 'date-time');
        // The operations that answer a User refer to this component.
        for (const method of ['get', 'patch'] as const) {
          assert.deepEqual(doc.paths['/v2/users/{id}'][method].responses['200'].content['application/json'].schema, {
            $ref: '#/components/schemas/User',
          });
        }
        assert.deepEqual(doc.paths['/v2/users'].get.responses['200'].content['application/json'].schema.properties.results.items, {
          $ref: '#/components/schemas/User',
        });
      });

      it('has an Account component schema with the keys of the account object in order, all required', () => {
        const account = doc.components.schemas.Account;
        assert.equal(account.type, 'object');
        assert.deepEqual(Object.keys(account.properties), ACCOUNT_KEYS);
        assert.deepEqual([...account.required].sort(), [...ACCOUNT_KEYS].sort());
        assert.equal(account.additionalProperties, false);
        assert.deepEqual(Object.keys(account.properties.connection.properties), CONNECTION_KEYS);
        assert.deepEqual([...account.properties.connection.required].sort(), [...CONNECTION_KEYS].sort());
        assert.deepEqual(account.properties.connection.properties.status.enum, ['connecting', 'connected', 'error']);
        for (const key of ['id', 'user']) assert.equal(account.properties[key].format, 'uuid', key);
        for (const [path, method, status] of [
          ['/v2/accounts/{id}', 'get', 200],
          ['/v2/link/accounts', 'post', 200],
          ['/v2/link/accounts', 'post', 201],
          ['/v2/link/accounts/{id}', 'patch', 200],
        ] as const) {
          assert.equal(doc.paths[path][method].responses[status].content['application/json'].schema.$ref, '#/components/schemas/Account');
        }
        for (const path of ['/v2/accounts', '/v2/link/accounts']) {
          assert.deepEqual(doc.paths[path].get.responses['200'].content['application/json'].schema.properties.results.items, {
            $ref: '#/components/schemas/Account',
          });
        }
      });
    });

    describe('live responses validate against the served document', () => {
      let userId: string;
      let created: Response;

      before(async () => {
        created = await api.request({ method: 'POST', url: '/v2/users', payload: FULL_USER_BODY });
        userId = created.json?.id;
      });

      it('POST /v2/users 200', () => {
        assertDocumented(created, '/v2/users', 'post', 200);
      });

      it('GET /v2/users 200, a page with a next link', async () => {
        await createUser(api, { external_id: 'page' });
        await createUser(api, { external_id: 'page' });
        const first = await api.request({ method: 'GET', url: '/v2/users?limit=1' });
        assertDocumented(first, '/v2/users', 'get', 200);
        assert.equal(first.json.results.length, 1);
        assert.equal(typeof first.json.next, 'string', 'the first page links to the next');
        const next = new URL(first.json.next);
        const second = await api.request({ method: 'GET', url: next.pathname + next.search });
        assertDocumented(second, '/v2/users', 'get', 200);
        assert.equal(typeof second.json.previous, 'string', 'the second page links back');
        const filtered = await api.request({ method: 'GET', url: '/v2/users?external_id=page&limit=200' });
        assertDocumented(filtered, '/v2/users', 'get', 200);
        assert.equal(filtered.json.results.length, 2);
      });

      it('GET /v2/api-keys 200, a page of the client\'s keys', async () => {
        const res = await api.request({ method: 'GET', url: '/v2/api-keys' });
        assertDocumented(res, '/v2/api-keys', 'get', 200);
        assert.deepEqual(res.json.results.map((key: Json) => [key.id, key.current]), [[api.tenant.api_key_id, true]]);
        assertInvalid(responseValidator(ajv, doc, '/v2/api-keys', 'get', 200), { ...res.json, results: [{ ...res.json.results[0], secret_hash: 'x' }] }, 'a key with its hash');
      });

      it('GET /v2/users/{id} 200', async () => {
        const res = await api.request({ method: 'GET', url: `/v2/users/${userId}` });
        assertDocumented(res, '/v2/users/{id}', 'get', 200);
        assert.equal(res.json.id, userId);
      });

      it('GET /v2/users/{id} 200 for a user with every field unset', async () => {
        const id = await createUser(api, {});
        const res = await api.request({ method: 'GET', url: `/v2/users/${id}` });
        assertDocumented(res, '/v2/users/{id}', 'get', 200);
        assert.equal(res.json.first_name, null);
      });

      it('PATCH /v2/users/{id} 200', async () => {
        const res = await api.request({
          method: 'PATCH',
          url: `/v2/users/${userId}`,
          payload: { first_name: 'Sally', email: null, external_metadata: ['any', 'json', 1] },
        });
        assertDocumented(res, '/v2/users/{id}', 'patch', 200);
        assert.equal(res.json.first_name, 'Sally');
      });

      it('POST /v2/user-tokens 200 and POST /v2/user-tokens/introspect 200 (active and inactive)', async () => {
        const token = await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: userId } });
        assertDocumented(token, '/v2/user-tokens', 'post', 200);
        const active = await api.request({
          method: 'POST',
          url: '/v2/user-tokens/introspect',
          payload: { user_token: token.json.user_token },
        });
        assertDocumented(active, '/v2/user-tokens/introspect', 'post', 200);
        assert.equal(active.json.active, true);
        assert.equal(active.json.user_id, userId);
        const inactive = await api.request({
          method: 'POST',
          url: '/v2/user-tokens/introspect',
          payload: { user_token: 'not.a.token' },
        });
        assertDocumented(inactive, '/v2/user-tokens/introspect', 'post', 200);
        assert.equal(inactive.json.active, false);
      });

      it('DELETE /v2/users/{id} 204 with no body, as documented', async () => {
        const id = await createUser(api);
        const res = await api.request({ method: 'DELETE', url: `/v2/users/${id}` });
        assert.equal(res.status, 204);
        assert.equal(res.body, '');
        const documented = doc.paths['/v2/users/{id}'].delete.responses['204'];
        assert.ok(documented, 'DELETE /v2/users/{id} documents 204');
        assert.equal(documented.content, undefined, 'a 204 documents no body');
      });

      it('400 validation errors on create, update, list and user-tokens', async () => {
        assertDocumented(
          await api.request({ method: 'POST', url: '/v2/users', payload: { email: 'nope', address: { country: 'XX' } } }),
          '/v2/users',
          'post',
          400,
        );
        assertDocumented(
          await api.request({
            method: 'POST',
            url: '/v2/users',
            payload: '{"broken',
            headers: { 'content-type': 'application/json' },
          }),
          '/v2/users',
          'post',
          400,
        );
        assertDocumented(
          await api.request({ method: 'PATCH', url: `/v2/users/${userId}`, payload: { birth_date: { year: 1800 } } }),
          '/v2/users/{id}',
          'patch',
          400,
        );
        assertDocumented(await api.request({ method: 'GET', url: '/v2/users?limit=0' }), '/v2/users', 'get', 400);
        assertDocumented(await api.request({ method: 'GET', url: '/v2/users?cursor=garbage' }), '/v2/users', 'get', 400);
        assertDocumented(
          await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: MISSING_ID } }),
          '/v2/user-tokens',
          'post',
          400,
        );
        assertDocumented(
          await api.request({ method: 'POST', url: '/v2/user-tokens/introspect', payload: {} }),
          '/v2/user-tokens/introspect',
          'post',
          400,
        );
      });

      it('401 on every operation, without credentials and with wrong ones', async () => {
        const bad = { api_key_id: 'nobody', api_key_secret: 'wrong' } as unknown as TestApi['tenant'];
        for (const [path, methods] of Object.entries(OPERATIONS)) {
          for (const method of methods) {
            const url = path.replace('{id}', userId);
            const payload = method === 'post' || method === 'patch' ? {} : undefined;
            const badBearer = { authorization: 'Bearer not.a.token' };
            for (const [as, headers] of [[null, {}], [bad, {}], [null, badBearer]] as const) {
              const res = await api.request({ method: method.toUpperCase() as 'GET', url, payload, as, headers });
              assertDocumented(res, path, method, 401);
              const challenge = String(res.headers['www-authenticate']);
              assert.match(challenge, isLink(path) ? /^Bearer\b/ : /^Basic\b/, `${method} ${path} 401 challenge`);
            }
          }
        }
      });

      it('404 on the {id} routes for an unknown, a malformed and a deleted id', async () => {
        const deleted = await createUser(api);
        await api.request({ method: 'DELETE', url: `/v2/users/${deleted}` });
        for (const id of [MISSING_ID, 'not-a-uuid', deleted]) {
          assertDocumented(await api.request({ method: 'GET', url: `/v2/users/${id}` }), '/v2/users/{id}', 'get', 404);
          assertDocumented(
            await api.request({ method: 'PATCH', url: `/v2/users/${id}`, payload: { first_name: 'x' } }),
            '/v2/users/{id}',
            'patch',
            404,
          );
          assertDocumented(await api.request({ method: 'DELETE', url: `/v2/users/${id}` }), '/v2/users/{id}', 'delete', 404);
        }
      });
    });

    describe('live responses of the accounts and Link routes validate against the served document', () => {
      let user: LinkUser;
      let connecting: Json;
      let connected: Json;
      let failed: Json;
      const link = (options: Parameters<typeof linkRequest>[2]) => linkRequest(api, user.token, options);

      before(async () => {
        user = await createLinkUser(api, FULL_USER_BODY);
        connecting = (await attempt(api, user, { item: 'doc_connecting', employers: ['Acme'] })).json;
        const second = (await attempt(api, user, { item: 'doc_connected' })).json;
        connected = (await report(api, user, second.id, { connection: { status: 'connected' }, employers: ['Acme', 'Beta'] })).json;
        const third = (await attempt(api, user, { item: 'doc_failed' })).json;
        failed = (await report(api, user, third.id, { connection: { status: 'error', error_code: 'mfa_timeout' } })).json;
      });

      it('POST /v2/link/accounts 201 (new) and 200 (the existing account, and a restarted failed one)', async () => {
        const created = await link({ method: 'POST', url: '/v2/link/accounts', payload: { item: 'doc_new', source: 'src' } });
        assertDocumented(created, '/v2/link/accounts', 'post', 201);
        const existing = await link({ method: 'POST', url: '/v2/link/accounts', payload: { item: 'doc_new' } });
        assertDocumented(existing, '/v2/link/accounts', 'post', 200);
        const restarted = await link({ method: 'POST', url: '/v2/link/accounts', payload: { item: 'doc_failed' } });
        assertDocumented(restarted, '/v2/link/accounts', 'post', 200);
        assert.equal(restarted.json.connection.status, 'connecting');
        const replayed = await link({ method: 'POST', url: '/v2/link/accounts', payload: { item: 'doc_idem' }, headers: { 'idempotency-key': 'doc-1' } });
        assertDocumented(replayed, '/v2/link/accounts', 'post', 201);
        const again = await link({ method: 'POST', url: '/v2/link/accounts', payload: { item: 'doc_idem' }, headers: { 'idempotency-key': 'doc-1' } });
        assertDocumented(again, '/v2/link/accounts', 'post', 201);
        assert.equal(again.headers['idempotent-replayed'], 'true');
      });

      it('POST /v2/link/accounts 400, 415 and 422', async () => {
        assertDocumented(await link({ method: 'POST', url: '/v2/link/accounts', payload: {} }), '/v2/link/accounts', 'post', 400);
        assertDocumented(
          await link({ method: 'POST', url: '/v2/link/accounts', payload: { item: 'x'.repeat(101), employers: Array(21).fill('e') } }),
          '/v2/link/accounts',
          'post',
          400,
        );
        assertDocumented(
          await link({ method: 'POST', url: '/v2/link/accounts', payload: '{"item', headers: { 'content-type': 'application/json' } }),
          '/v2/link/accounts',
          'post',
          400,
        );
        assertDocumented(
          await link({ method: 'POST', url: '/v2/link/accounts', payload: 'item', headers: { 'content-type': 'text/plain' } }),
          '/v2/link/accounts',
          'post',
          415,
        );
        await link({ method: 'POST', url: '/v2/link/accounts', payload: { item: 'doc_k' }, headers: { 'idempotency-key': 'doc-2' } });
        assertDocumented(
          await link({ method: 'POST', url: '/v2/link/accounts', payload: { item: 'doc_other' }, headers: { 'idempotency-key': 'doc-2' } }),
          '/v2/link/accounts',
          'post',
          422,
        );
      });

      it('PATCH /v2/link/accounts/{id} 200 (connected, rescan, error), 400, 404 and 409', async () => {
        const account = (await attempt(api, user, { item: 'doc_patch' })).json;
        const url = `/v2/link/accounts/${account.id}`;
        assertDocumented(await link({ method: 'PATCH', url, payload: { connection: { status: 'connected' } } }), '/v2/link/accounts/{id}', 'patch', 200);
        assertDocumented(
          await link({ method: 'PATCH', url, payload: { connection: { status: 'connected' }, employers: ['Gamma'] } }),
          '/v2/link/accounts/{id}',
          'patch',
          200,
        );
        assertDocumented(await link({ method: 'PATCH', url, payload: { connection: { status: 'bogus' } } }), '/v2/link/accounts/{id}', 'patch', 400);
        assertDocumented(await link({ method: 'PATCH', url, payload: { connection: { status: 'error' } } }), '/v2/link/accounts/{id}', 'patch', 400);
        const error = await link({ method: 'PATCH', url, payload: { connection: { status: 'error', error_code: 'system_error', error_message: 'Oops.' } } });
        assertDocumented(error, '/v2/link/accounts/{id}', 'patch', 200);
        assertDocumented(await link({ method: 'PATCH', url, payload: { connection: { status: 'connected' } } }), '/v2/link/accounts/{id}', 'patch', 409);
        for (const id of [MISSING_ID, 'not-a-uuid']) {
          assertDocumented(
            await link({ method: 'PATCH', url: `/v2/link/accounts/${id}`, payload: { connection: { status: 'connected' } } }),
            '/v2/link/accounts/{id}',
            'patch',
            404,
          );
        }
      });

      it('GET /v2/link/user 200, for a full and an empty user', async () => {
        assertDocumented(await link({ method: 'GET', url: '/v2/link/user' }), '/v2/link/user', 'get', 200);
        const empty = await createLinkUser(api);
        const res = await linkRequest(api, empty.token, { method: 'GET', url: '/v2/link/user' });
        assertDocumented(res, '/v2/link/user', 'get', 200);
        assert.equal(res.json.first_name, null);
      });

      it('GET /v2/link/accounts 200 (a page with next, the page it links to) and 400', async () => {
        const first = await link({ method: 'GET', url: '/v2/link/accounts?limit=2' });
        assertDocumented(first, '/v2/link/accounts', 'get', 200);
        assert.equal(typeof first.json.next, 'string');
        const next = new URL(first.json.next);
        const second = await link({ method: 'GET', url: next.pathname + next.search });
        assertDocumented(second, '/v2/link/accounts', 'get', 200);
        assert.equal(typeof second.json.previous, 'string');
        assertDocumented(await link({ method: 'GET', url: '/v2/link/accounts?limit=0' }), '/v2/link/accounts', 'get', 400);
        assertDocumented(await link({ method: 'GET', url: '/v2/link/accounts?cursor=garbage' }), '/v2/link/accounts', 'get', 400);
      });

      it('GET /v2/accounts 200 (pages, filters) and 400', async () => {
        const first = await api.request({ method: 'GET', url: '/v2/accounts?limit=1' });
        assertDocumented(first, '/v2/accounts', 'get', 200);
        const next = new URL(first.json.next);
        assertDocumented(await api.request({ method: 'GET', url: next.pathname + next.search }), '/v2/accounts', 'get', 200);
        const filtered = await api.request({ method: 'GET', url: `/v2/accounts?user=${user.id}&item=doc_connected` });
        assertDocumented(filtered, '/v2/accounts', 'get', 200);
        assert.deepEqual(filtered.json.results, [connected]);
        for (const query of ['limit=0', 'user=nope', 'cursor=garbage']) {
          assertDocumented(await api.request({ method: 'GET', url: `/v2/accounts?${query}` }), '/v2/accounts', 'get', 400);
        }
      });

      it('GET /v2/accounts/{id} 200 in every state, and 404', async () => {
        for (const account of [connecting, connected, failed]) {
          const res = await api.request({ method: 'GET', url: `/v2/accounts/${account.id}` });
          assertDocumented(res, '/v2/accounts/{id}', 'get', 200);
        }
        assert.equal(failed.connection.status, 'error');
        for (const id of [MISSING_ID, 'not-a-uuid']) {
          assertDocumented(await api.request({ method: 'GET', url: `/v2/accounts/${id}` }), '/v2/accounts/{id}', 'get', 404);
        }
      });

      it('DELETE /v2/accounts/{id} 204 with no body, as documented, then 404', async () => {
        const account = (await attempt(api, user, { item: 'doc_delete' })).json;
        const res = await api.request({ method: 'DELETE', url: `/v2/accounts/${account.id}` });
        assert.equal(res.status, 204);
        assert.equal(res.body, '');
        const documented = doc.paths['/v2/accounts/{id}'].delete.responses['204'];
        assert.ok(documented, 'DELETE /v2/accounts/{id} documents 204');
        assert.equal(documented.content, undefined, 'a 204 documents no body');
        assertDocumented(await api.request({ method: 'DELETE', url: `/v2/accounts/${account.id}` }), '/v2/accounts/{id}', 'delete', 404);
      });

      it('an Account or a pre-fill that breaks the documented schema is rejected', () => {
        const validate = responseValidator(ajv, doc, '/v2/accounts/{id}', 'get', 200);
        assertValid(validate, connected, 'the real account');
        const { connection: _connection, ...noConnection } = connected;
        assertInvalid(validate, noConnection, 'an account without connection');
        assertInvalid(validate, { ...connected, connection: { ...connected.connection, status: 'pending' } }, 'an unknown status');
        const { updated_at: _updated, ...connectionWithoutTime } = connected.connection;
        assertInvalid(validate, { ...connected, connection: connectionWithoutTime }, 'a connection without updated_at');
        assertInvalid(validate, { ...connected, user: 'not-a-uuid' }, 'a user that is not a uuid');
        assertInvalid(validate, { ...connected, employers: [1] }, 'a number employer');
        assertInvalid(validate, { ...connected, scanned_at: 'yesterday' }, 'a scanned_at that is not a date-time');
        assertInvalid(validate, { ...connected, client_id: MISSING_ID }, 'an extra key');
        const page = responseValidator(ajv, doc, '/v2/link/accounts', 'get', 200);
        assertValid(page, { next: null, previous: null, results: [connected] }, 'a page');
        assertInvalid(page, { next: null, previous: null, results: [{ ...connected, id: 7 }] }, 'a page with a bad Account');
        const prefill = responseValidator(ajv, doc, '/v2/link/user', 'get', 200);
        const real = { id: user.id, first_name: 'Sarah', last_name: null, email: null, phone_number: null };
        assertValid(prefill, real, 'a pre-fill');
        assertInvalid(prefill, { ...real, ssn: '123-45-6789' }, 'a pre-fill with ssn');
        assertInvalid(prefill, { ...real, id: 'x' }, 'a pre-fill with a bad id');
      });
    });

    describe('the response validators can fail', () => {
      let user: Json;
      before(async () => {
        const id = await createUser(api, FULL_USER_BODY);
        user = (await api.request({ method: 'GET', url: `/v2/users/${id}` })).json;
      });

      it('a User that breaks the documented schema is rejected', () => {
        const validate = responseValidator(ajv, doc, '/v2/users/{id}', 'get', 200);
        assertValid(validate, user, 'the real user');
        const { email: _email, ...missingKey } = user;
        assertInvalid(validate, missingKey, 'a User without email');
        assertInvalid(validate, { ...user, id: 42 }, 'a number id');
        assertInvalid(validate, { ...user, id: 'not-a-uuid' }, 'an id that is not a uuid');
        assertInvalid(validate, { ...user, created_at: 'yesterday' }, 'a created_at that is not a date-time');
        assertInvalid(validate, { ...user, open_banking: {} }, 'an extra key');
        assertInvalid(validate, { ...user, address: { ...user.address, city: 3 } }, 'a number city');
        assertInvalid(validate, { ...user, birth_date: { year: 1990, month: 2 } }, 'a birth_date without day');
        assertInvalid(validate, { ...user, items_connected: null }, 'null items_connected');
      });

      it('the $ref to the User component is followed inside a page', () => {
        const validate = responseValidator(ajv, doc, '/v2/users', 'get', 200);
        assertValid(validate, { next: null, previous: null, results: [user] }, 'a page');
        assertInvalid(validate, { next: null, previous: null, results: [{ ...user, id: 7 }] }, 'a page with a bad User');
        assertInvalid(validate, { next: '/v2/users?cursor=abc', previous: null, results: [] }, 'a relative next link');
        assertInvalid(validate, { previous: null, results: [] }, 'a page without next');
      });

      it('create, token and error bodies that break the document are rejected', () => {
        const create = responseValidator(ajv, doc, '/v2/users', 'post', 200);
        assertInvalid(create, { user_token: 'a.b.c', id: 'not-a-uuid' }, 'a create response with a bad id');
        assertInvalid(create, { id: user.id }, 'a create response without user_token');
        assertInvalid(responseValidator(ajv, doc, '/v2/user-tokens', 'post', 200), {}, 'a token response without user_token');
        assertInvalid(
          responseValidator(ajv, doc, '/v2/user-tokens/introspect', 'post', 200),
          { active: 'yes' },
          'introspection with a string active',
        );
        const notFound = responseValidator(ajv, doc, '/v2/users/{id}', 'get', 404);
        assertInvalid(notFound, {}, 'a 404 without detail');
        assertInvalid(notFound, { detail: 404 }, 'a 404 with a number detail');
        assertInvalid(responseValidator(ajv, doc, '/v2/users', 'post', 400), { non_field_errors: 'x' }, 'a 400 with a string list');
      });
    });

    describe('with LINK_ALLOWED_ORIGINS', () => {
      it('the CORS preflight routes stay out of the document', async () => {
        const withCors = await createTestApi(store, { LINK_ALLOWED_ORIGINS: 'https://app.example.com' });
        try {
          const res = await withCors.request({ method: 'GET', url: '/openapi.json', as: null });
          assert.equal(res.status, 200);
          assert.deepEqual(res.json.paths, doc.paths);
        } finally {
          await withCors.close();
        }
      });
    });

    describe('/docs', () => {
      it('renders the document for people as HTML at /docs and /docs/', async () => {
        for (const url of ['/docs', '/docs/']) {
          const res = await api.request({ method: 'GET', url, as: null });
          assert.equal(res.status, 200, `${url}: ${res.status} ${res.body.slice(0, 200)}`);
          assert.match(String(res.headers['content-type']), /^text\/html\b/);
          assert.match(res.body, /<html[\s>]/i);
          assert.match(res.body, /swagger-ui/i);
        }
      });

      it('the docs page reads the same document', async () => {
        const res = await api.request({ method: 'GET', url: '/docs/json', as: null });
        assert.equal(res.status, 200);
        assert.deepEqual(res.json, doc);
      });
    });
  });
}
