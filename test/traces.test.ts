// OpenTelemetry traces: a real server exports to an OTLP/HTTP (JSON) receiver in this process; the spans of requests,
// statements and a webhook delivery arrive with their names and attributes, flushed at shutdown, and nothing personal.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { basicAuth, FULL_USER_BODY, openStore, STORES, TEST_PII_KEYS, TEST_SECRET, type Store } from './helpers/app.js';
import { cleanUpProcesses, sqliteStoreWithKey, startServer, stopServer } from './helpers/process.js';
import { eventually, startReceiver } from './helpers/receiver.js';

after(cleanUpProcesses);

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: OtlpValue }[];
}
interface OtlpExport {
  resourceSpans: { resource?: { attributes?: { key: string; value: OtlpValue }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean | undefined>;
}

const SERVER = 2;
const CLIENT = 3;

const valueOf = (value: OtlpValue) => value.stringValue ?? (value.intValue === undefined ? value.boolValue : Number(value.intValue));
const attributesOf = (list: { key: string; value: OtlpValue }[] = []) => Object.fromEntries(list.map(({ key, value }) => [key, valueOf(value)]));

/** An OTLP/HTTP receiver: keeps each JSON export POSTed to /v1/traces, raw and parsed. */
async function startCollector() {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces' && /json/.test(req.headers['content-type'] ?? '')) bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const exports = () => bodies.map((body) => JSON.parse(body) as OtlpExport);
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    resources: () => exports().flatMap((e) => e.resourceSpans.map((r) => attributesOf(r.resource?.attributes))),
    spans: (): Span[] =>
      exports().flatMap((e) =>
        e.resourceSpans.flatMap((r) =>
          r.scopeSpans.flatMap((s) =>
            s.spans.map((span) => ({ ...span, parentSpanId: span.parentSpanId || undefined, attributes: attributesOf(span.attributes) })),
          ),
        ),
      ),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function storeWithKey(store: Store): Promise<{ env: NodeJS.ProcessEnv; key: IssuedKey; drop: () => Promise<void> }> {
  if (store === 'sqlite') {
    const { path, key } = await sqliteStoreWithKey('traces');
    return { env: { DATABASE_URL: path }, key, drop: async () => undefined };
  }
  const opened = await openStore('postgres');
  const key = await createApiKey(opened.db, { name: 'traces' });
  return { env: { ...opened.env, USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS }, key, drop: () => opened.drop() };
}

for (const store of STORES) {
  describe(`traces over OTLP/HTTP (${store})`, () => {
    it('requests, their statements and a delivery arrive as spans, flushed at shutdown; no personal data or key in any', { timeout: 120_000 }, async () => {
      const collector = await startCollector();
      const receiver = await startReceiver();
      const { env, key, drop } = await storeWithKey(store);
      try {
        const server = await startServer({
          ...env,
          OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
          OTEL_SERVICE_NAME: 'users-api-under-test',
          RATE_LIMIT_MAX: '0',
          MAX_EVENT_LOOP_DELAY_MS: '0',
          WEBHOOK_ALLOW_PRIVATE: 'true',
          WEBHOOK_POLL_MS: '20',
        });
        const headers = { authorization: basicAuth(key), 'content-type': 'application/json' };
        const secret = 'whsec_' + Buffer.alloc(24, 9).toString('base64');
        const idempotencyKey = `traces-${randomUUID()}`;
        const callerTrace = randomBytes(16).toString('hex');
        const callerSpan = randomBytes(8).toString('hex');
        const missing = randomUUID();
        let id = '';
        try {
          const sub = await fetch(`${server.base}/v2/webhooks`, { method: 'POST', headers, body: JSON.stringify({ events: ['users.created'], name: 'traces', url: receiver.url, secret }) });
          assert.equal(sub.status, 201);
          const created = await fetch(`${server.base}/v2/users`, {
            method: 'POST',
            headers: { ...headers, 'idempotency-key': idempotencyKey, traceparent: `00-${callerTrace}-${callerSpan}-01` },
            body: JSON.stringify(FULL_USER_BODY),
          });
          assert.equal(created.status, 200);
          id = ((await created.json()) as { id: string }).id;
          assert.equal((await fetch(`${server.base}/v2/users/${id}`, { headers })).status, 200);
          assert.equal((await fetch(`${server.base}/v2/users/${missing}`, { headers })).status, 404);
          assert.equal((await fetch(`${server.base}/v2/users?external_id=${FULL_USER_BODY.external_id}&limit=5`, { headers })).status, 200);
          await eventually(() => receiver.received.length === 1, () => `${receiver.received.length} deliveries`);
          // The delivery's outcome is recorded after the receiver answered.
          await new Promise((resolve) => setTimeout(resolve, 300));
        } finally {
          assert.deepEqual(await stopServer(server), { code: 0, signal: null });
        }

        const spans = collector.spans();
        assert.ok(spans.length > 0, 'no span arrived by the end of the shutdown');
        assert.ok(collector.resources().every((r) => r['service.name'] === 'users-api-under-test'), JSON.stringify(collector.resources()));
        const requests = spans.filter((s) => s.kind === SERVER);
        const named = (name: string) => requests.filter((s) => s.name === name);

        const [create] = named('POST /v2/users');
        assert.ok(create, `no POST /v2/users span among ${requests.map((s) => s.name).join(', ')}`);
        assert.deepEqual(create.attributes, { 'http.request.method': 'POST', 'http.route': '/v2/users', 'http.response.status_code': 200 });
        assert.equal(create.traceId, callerTrace, "the caller's traceparent is continued");
        assert.equal(create.parentSpanId, callerSpan);
        assert.deepEqual(
          named('GET /v2/users/:id').map((s) => s.attributes['http.response.status_code']).sort(),
          [200, 404],
        );
        assert.deepEqual(named('GET /v2/users').map((s) => s.attributes), [{ 'http.request.method': 'GET', 'http.route': '/v2/users', 'http.response.status_code': 200 }]);
        assert.equal(named('POST /v2/webhooks')[0]?.attributes['http.response.status_code'], 201);

        // The statements of the create, children of its span: the key's check, the user's insert (one unit with its
        // event and idempotency record) among them.
        const statements = spans.filter((s) => s.kind === CLIENT && s.parentSpanId === create.spanId);
        assert.ok(statements.length >= 2, JSON.stringify(statements));
        const system = store === 'postgres' ? 'postgresql' : 'sqlite';
        for (const s of statements) {
          assert.equal(s.traceId, create.traceId);
          assert.equal(s.attributes['db.system'], system);
          assert.match(String(s.attributes['db.operation.name']), /^(SELECT|INSERT|UPDATE|DELETE|BEGIN|COMMIT)$/);
          assert.deepEqual(Object.keys(s.attributes).filter((k) => !['db.system', 'db.operation.name', 'db.collection.name'].includes(k)), []);
        }
        assert.ok(
          statements.some((s) => s.attributes['db.operation.name'] === 'INSERT' && s.attributes['db.collection.name'] === 'users'),
          statements.map((s) => s.name).join(', '),
        );
        assert.ok(statements.some((s) => s.attributes['db.operation.name'] === 'SELECT'), statements.map((s) => s.name).join(', '));
        // Background polls of the outbox make no spans of their own.
        assert.equal(spans.filter((s) => s.kind === CLIENT && s.attributes['db.system'] && !s.parentSpanId).length, 0);

        const deliveries = spans.filter((s) => s.name === 'webhook users.created');
        assert.deepEqual(
          deliveries.map((s) => s.attributes),
          [{ 'http.request.method': 'POST', 'users_api.webhook.event': 'users.created', 'users_api.webhook.outcome': 'delivered', 'http.response.status_code': 200 }],
        );

        const everything = collector.bodies.join('\n');
        const secrets = [
          id,
          missing,
          idempotencyKey,
          secret,
          receiver.url,
          '/hooks',
          'external_id',
          'limit=5',
          key.client_id,
          key.api_key_id,
          key.api_key_secret,
          FULL_USER_BODY.first_name,
          FULL_USER_BODY.last_name,
          FULL_USER_BODY.email,
          FULL_USER_BODY.phone_number,
          FULL_USER_BODY.ssn,
          FULL_USER_BODY.external_id,
          FULL_USER_BODY.address.line1,
        ];
        for (const value of secrets) assert.equal(everything.includes(value), false, `an export holds ${value}`);
      } finally {
        await receiver.close();
        await collector.close();
        await drop();
      }
    });
  });
}

describe('traces turned off', () => {
  it('OTEL_SDK_DISABLED=true beside an endpoint: nothing is sent', { timeout: 60_000 }, async () => {
    const collector = await startCollector();
    const { path, key } = await sqliteStoreWithKey('traces-off');
    try {
      const server = await startServer({
        DATABASE_URL: path,
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
        OTEL_SDK_DISABLED: 'true',
        MAX_EVENT_LOOP_DELAY_MS: '0',
      });
      try {
        assert.equal((await fetch(`${server.base}/v2/users`, { method: 'POST', headers: { authorization: basicAuth(key) } })).status, 200);
      } finally {
        assert.deepEqual(await stopServer(server), { code: 0, signal: null });
      }
      assert.deepEqual(collector.bodies, []);
    } finally {
      await collector.close();
    }
  });
});
