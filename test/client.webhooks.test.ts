// verifyWebhook (@users-api/client/webhooks): both signatures checked over the raw body, the event typed; and a real
// receiver built on it, subscribed and managed through the typed client.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLinkClient, UsersApiError, type UsersApiClient } from '@users-api/client';
import { signatureHeaders } from '@users-api/client/signing';
import { verifyWebhook, WebhookVerificationError, type WebhookEvent, type WebhookEventName } from '@users-api/client/webhooks';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { WEBHOOK_EVENTS } from '../src/webhooks/webhooks.events.js';
import { createTestApi, STORES, type TestApi } from './helpers/app.js';
import { clientOf, serve } from './helpers/client.js';
import { eventually } from './helpers/receiver.js';

const SECRET = 'whsec-client-test-secret-0123456789';
const WEBHOOK_ENV = { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_POLL_MS: '20', WEBHOOK_RETRY_BASE_MS: '30', WEBHOOK_TIMEOUT_MS: '2000', WEBHOOK_MAX_ATTEMPTS: '2' };

// The client's event names are the service's, both ways (a type check: `npm run typecheck` fails otherwise).
const _serviceNamesAreTyped: readonly WebhookEventName[] = WEBHOOK_EVENTS;
const _typedNamesAreTheService: readonly (typeof WEBHOOK_EVENTS)[number][] = [] as WebhookEventName[];

/** Runs `run`, which must throw a WebhookVerificationError; answers its reason. */
function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof WebhookVerificationError, `not a WebhookVerificationError: ${String(error)}`);
    return error.reason;
  }
  assert.fail('verified');
}

describe('verifyWebhook', () => {
  const body = JSON.stringify({ event: 'accounts.connected', name: 'prod', data: { user: 'u1', account: 'a1' } });
  const now = 1_700_000_000_000;
  const signed = signatureHeaders(SECRET, 'msg_1', now / 1000, body);

  it('returns the typed event of a delivery signed both ways, from a string, bytes or fetch Headers', () => {
    const event = verifyWebhook(body, signed, SECRET, { now });
    assert.equal(event.event, 'accounts.connected');
    if (event.event === 'accounts.connected') assert.equal(event.data.account, 'a1'); // narrowed: only account events have it
    assert.deepEqual(verifyWebhook(new TextEncoder().encode(body), new Headers(signed), SECRET, { now }), event);
    const shouting = Object.fromEntries(Object.entries(signed).map(([name, value]) => [name.toUpperCase(), [value]]));
    assert.deepEqual(verifyWebhook(Buffer.from(body), shouting, SECRET, { now }), event);
  });

  it('refuses a tampered body, a wrong secret, a stale timestamp and missing signatures', () => {
    assert.equal(refusal(() => verifyWebhook(body.replace('a1', 'a2'), signed, SECRET, { now })), 'bad_signature');
    assert.equal(refusal(() => verifyWebhook(`${body} `, signed, SECRET, { now })), 'bad_signature');
    assert.equal(refusal(() => verifyWebhook(body, signed, `${SECRET}x`, { now })), 'bad_signature');
    // Each scheme on its own catches a tampered body.
    for (const scheme of ['argyle', 'standard'] as const) {
      assert.equal(refusal(() => verifyWebhook(body.replace('u1', 'u2'), signed, SECRET, { now, schemes: [scheme] })), 'bad_signature', scheme);
    }
    const resigned = { ...signed, 'webhook-signature': signatureHeaders(SECRET, 'msg_2', now / 1000, body)['webhook-signature']! };
    assert.equal(refusal(() => verifyWebhook(body, resigned, SECRET, { now })), 'bad_signature', 'a signature of another delivery id');
    assert.equal(refusal(() => verifyWebhook(body, signed, SECRET, { now: now + 301_000 })), 'stale_timestamp');
    assert.equal(refusal(() => verifyWebhook(body, signed, SECRET, { now: now - 301_000 })), 'stale_timestamp');
    assert.equal(verifyWebhook(body, signed, SECRET, { now: now + 3_600_000, tolerance: 3601 }).event, 'accounts.connected');
    const { 'x-argyle-signature': _argyle, ...standardOnly } = signed;
    assert.equal(refusal(() => verifyWebhook(body, standardOnly, SECRET, { now })), 'missing_signature');
    assert.equal(verifyWebhook(body, standardOnly, SECRET, { now, schemes: ['standard'] }).event, 'accounts.connected');
    assert.equal(refusal(() => verifyWebhook(body, { 'x-argyle-signature': signed['x-argyle-signature'] }, SECRET, { now })), 'missing_signature');
    assert.equal(verifyWebhook(body, { 'x-argyle-signature': signed['x-argyle-signature'] }, SECRET, { schemes: ['argyle'] }).event, 'accounts.connected');
    const notEvent = '["not", "an", "event"]';
    assert.equal(refusal(() => verifyWebhook(notEvent, signatureHeaders(SECRET, 'm', now / 1000, notEvent), SECRET, { now })), 'bad_payload');
  });

  it('agrees with the standardwebhooks library: its signatures verify, one of several (a rotation) is enough', () => {
    const library = new StandardWebhook(Buffer.from(SECRET).toString('base64'));
    const at = new Date(now);
    const signature = library.sign('msg_lib', at, body);
    const headers = { 'webhook-id': 'msg_lib', 'webhook-timestamp': String(now / 1000), 'webhook-signature': `v1,bm90IHRoaXMgb25l ${signature}` };
    assert.equal(verifyWebhook(body, headers, SECRET, { now, schemes: ['standard'] }).event, 'accounts.connected');
  });
});

/** A receiver whose handler is the README's three lines; it records the typed events and answers 400 to a forgery. */
async function startVerifyingReceiver(secret: string) {
  const events: WebhookEvent[] = [];
  const refused: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        const event = verifyWebhook(Buffer.concat(chunks), req.headers, secret);
        events.push(event);
        res.writeHead(204).end();
      } catch (error) {
        refused.push(error instanceof WebhookVerificationError ? error.reason : String(error));
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    events,
    refused,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

for (const store of STORES) {
  describe(`typed client: webhooks to a receiver using verifyWebhook (${store})`, () => {
    let api: TestApi;
    let client: UsersApiClient;
    before(async () => {
      api = await createTestApi(store, WEBHOOK_ENV);
      client = await clientOf(api);
    });
    after(() => api.close());

    it('subscribes through the client; the receiver gets typed events; deliveries and retries through the client', async () => {
      const receiver = await startVerifyingReceiver(SECRET);
      const forgetful = await startVerifyingReceiver('not-the-subscription-secret');
      try {
        const sub = await client.webhooks.create({ events: ['users.created', 'accounts.connected'], name: 'typed', url: receiver.url, secret: SECRET, config: { include_resource: true } });
        assert.equal(sub.has_secret, true);
        assert.deepEqual(await client.webhooks.get(sub.id), sub);
        const wrong = await client.webhooks.create({ events: ['users.created'], name: 'wrong-secret', url: forgetful.url, secret: SECRET });
        assert.deepEqual((await client.webhooks.list().toArray()).map((w) => w.id), [sub.id, wrong.id]);

        const { id, user_token } = await client.users.create({ first_name: 'Ada', ssn: '123-45-6789' });
        const link = createLinkClient({ baseUrl: await serve(api), userToken: user_token });
        const account = await link.accounts.create({ item: 'item_1', employers: ['Acme'] });
        await link.accounts.report(account.id, { connection: { status: 'connected' } });

        await eventually(() => receiver.events.length >= 2, () => `${receiver.events.length} events`);
        const [created, connected] = receiver.events;
        assert.ok(created?.event === 'users.created' && connected?.event === 'accounts.connected', JSON.stringify(receiver.events));
        assert.equal(created.data.user, id);
        assert.equal(created.data.resource?.first_name, 'Ada');
        assert.equal('ssn' in (created.data.resource ?? {}), false);
        assert.deepEqual([connected.data.account, connected.data.resource?.connection.status], [account.id, 'connected']);
        assert.deepEqual(receiver.refused, []);

        await eventually(async () => (await client.webhooks.deliveries(sub.id).toArray()).every((d) => d.status === 'delivered'), () => 'not delivered');
        const deliveries = await client.webhooks.deliveries(sub.id, { limit: 1 }).toArray();
        assert.deepEqual(deliveries.map((d) => [d.event, d.status, d.last_response_code]), [['users.created', 'delivered', 204], ['accounts.connected', 'delivered', 204]]);
        const again = await client.webhooks.retry(sub.id, deliveries[0]!.id).catch((error: unknown) => error);
        assert.ok(again instanceof UsersApiError && again.status === 409, String(again));

        // A receiver holding another secret refuses every attempt: the delivery fails, and a retry makes it due again.
        await eventually(() => forgetful.refused.length >= 2, () => `${forgetful.refused.length} refusals`);
        assert.deepEqual(forgetful.refused.slice(0, 2), ['bad_signature', 'bad_signature']);
        assert.deepEqual(forgetful.events, []);
        await eventually(async () => (await client.webhooks.deliveries(wrong.id).toArray())[0]?.status === 'failed', () => 'not failed');
        const [failed] = await client.webhooks.deliveries(wrong.id).toArray();
        assert.equal(failed!.last_response_code, 400);
        const due = await client.webhooks.retry(wrong.id, failed!.id);
        assert.deepEqual([due.id, due.status, due.attempts], [failed!.id, 'pending', 0]);
        await eventually(() => forgetful.refused.length >= 3, () => 'the retry was not sent');

        await client.webhooks.delete(wrong.id);
        const gone = await client.webhooks.get(wrong.id).catch((error: unknown) => error);
        assert.ok(gone instanceof UsersApiError && gone.status === 404);
      } finally {
        await receiver.close();
        await forgetful.close();
      }
    });

    it('a delivery replayed with a tampered body is refused by the receiver', async () => {
      const receiver = await startVerifyingReceiver(SECRET);
      const recorded: { headers: Record<string, string>; body: string }[] = [];
      const recorder = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          recorded.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString('utf8') });
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
      try {
        await client.webhooks.create({ events: ['users.created'], name: 'recorder', url: `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/`, secret: SECRET });
        const { id } = await client.users.create({});
        await eventually(() => recorded.some((r) => r.body.includes(id)), () => 'nothing recorded');
        const { headers, body } = recorded.find((r) => r.body.includes(id))!;
        const send = (payload: string) => fetch(receiver.url, { method: 'POST', body: payload, headers: { 'content-type': 'application/json', ...Object.fromEntries(Object.entries(headers).filter(([name]) => /signature|^webhook-/.test(name))) } });
        assert.equal((await send(body)).status, 204, 'the delivery as sent verifies');
        assert.equal((await send(body.replace(id, '0190a4e2-0000-7000-8000-000000000000'))).status, 400);
        assert.deepEqual(receiver.refused, ['bad_signature']);
        assert.deepEqual(receiver.events.map((e) => e.data.user), [id]);
      } finally {
        await receiver.close();
        await new Promise<void>((resolve) => { recorder.closeAllConnections(); recorder.close(() => resolve()); });
      }
    });
  });
}
