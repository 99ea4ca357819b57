import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { deliveryBody, MIN_DELIVERY_SHARE, retryDelayMs, yieldMs } from '../src/webhooks/webhooks.dispatcher.js';
import { isInternalAddress, urlProblem } from '../src/webhooks/webhooks.address.js';
import { buildApp } from '../src/app.js';
import { runTogether } from '../src/db/prepared.js';
import { PiiCipher } from '../src/pii/pii.cipher.js';
import { resolveSecrets } from '../src/secrets.js';
import { WebhooksRepository } from '../src/webhooks/webhooks.repository.js';
import { countUsers, createTestApi, STORES, type TestApi } from './helpers/app.js';
import { eventually, startReceiver, type Receiver } from './helpers/receiver.js';

const SECRET = 'whsec-test-secret-0123456789abcdef';
/** Fast retries and polling, and the test receiver on 127.0.0.1. */
const WEBHOOK_ENV = { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_POLL_MS: '20', WEBHOOK_RETRY_BASE_MS: '30', WEBHOOK_TIMEOUT_MS: '2000' };

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('webhook addresses and retries', () => {
  it('refuses internal addresses, non-https URLs and credentials unless WEBHOOK_ALLOW_PRIVATE', () => {
    for (const address of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '::1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', '0.0.0.0']) {
      assert.equal(isInternalAddress(address), true, address);
    }
    for (const address of ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946', '8.8.8.8']) assert.equal(isInternalAddress(address), false, address);
    assert.equal(urlProblem('https://hooks.example.com/x', false), undefined);
    for (const url of ['http://hooks.example.com/x', 'https://127.0.0.1/x', 'https://[::1]/x', 'https://localhost/x', 'https://169.254.169.254/latest', 'https://u:p@hooks.example.com/', 'not a url']) {
      assert.notEqual(urlProblem(url, false), undefined, url);
    }
    assert.equal(urlProblem('http://127.0.0.1:9/x', true), undefined);
  });

  it('a backlog is delivered at once while the API is idle, and yields to it the busier it is', () => {
    assert.equal(yieldMs(10, 0), 0);
    assert.equal(yieldMs(10, 0.5), 10, 'half the loop to each');
    assert.equal(yieldMs(10, 1), Math.round(10 * (1 / MIN_DELIVERY_SHARE - 1)), 'under full load deliveries still get their share');
    assert.equal(yieldMs(10, 0.99), yieldMs(10, 1));
    assert.equal(yieldMs(5000, 1), 1000, 'never more than a second between rounds');
  });

  it('retries back off three times longer each time, with ±20% jitter', () => {
    assert.equal(retryDelayMs(1, 60_000, () => 0.5), 60_000);
    assert.equal(retryDelayMs(2, 60_000, () => 0.5), 180_000);
    assert.equal(retryDelayMs(3, 60_000, () => 0), 0.8 * 540_000);
    assert.equal(retryDelayMs(3, 60_000, () => 1), 1.2 * 540_000);
    const total = [1, 2, 3, 4, 5, 6, 7].reduce((sum, n) => sum + retryDelayMs(n, 60_000, () => 0.5), 0);
    assert.ok(total > 12 * 3600_000 && total < 30 * 3600_000, `8 attempts span about a day: ${total / 3600_000} h`);
  });
});

for (const store of STORES) {
  describe(`webhook subscriptions (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store);
    });
    after(() => api.close());

    const create = (payload: object, as = api.tenant) => api.request({ method: 'POST', url: '/v2/webhooks', payload, as });

    it('creates a subscription: 201, the secret never returned; list, get and delete', async () => {
      const res = await create({ events: ['users.created', 'accounts.connected'], name: 'prod', url: 'https://hooks.example.com/argyle', secret: SECRET, config: { include_resource: true } });
      assert.equal(res.status, 201, res.body);
      assert.deepEqual(Object.keys(res.json), ['id', 'name', 'url', 'events', 'config', 'has_secret', 'created_at']);
      assert.equal(res.json.has_secret, true);
      assert.deepEqual(res.json.config, { include_resource: true });
      assert.equal(res.body.includes(SECRET), false);
      const row = await api.db.selectFrom('webhooks').selectAll().where('id', '=', res.json.id).executeTakeFirstOrThrow();
      assert.equal(String(row.secret).includes(SECRET), false, 'the secret is stored encrypted');
      const got = await api.request({ method: 'GET', url: `/v2/webhooks/${res.json.id}` });
      assert.deepEqual(got.json, res.json);
      const listed = await api.request({ method: 'GET', url: '/v2/webhooks' });
      assert.deepEqual(listed.json.results.map((w: Json) => w.id), [res.json.id]);
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/webhooks/${res.json.id}` })).status, 204);
      assert.equal((await api.request({ method: 'GET', url: `/v2/webhooks/${res.json.id}` })).status, 404);
    });

    it('refuses unknown events, private or non-https URLs (without WEBHOOK_ALLOW_PRIVATE) and missing fields, in DRF words', async () => {
      const bad = await create({ events: ['users.created', 'users.exploded'], name: 'x', url: 'https://hooks.example.com/' });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.json, { events: { 1: ['"users.exploded" is not a valid choice.'] } });
      for (const url of ['http://hooks.example.com/', 'https://127.0.0.1/', 'https://10.0.0.8/hook', 'https://localhost:8443/']) {
        const res = await create({ events: ['*'], name: 'x', url });
        assert.equal(res.status, 400, url);
        assert.ok(Array.isArray(res.json.url), res.body);
      }
      const missing = await create({});
      assert.deepEqual(Object.keys(missing.json).sort(), ['events', 'name', 'url']);
      assert.equal((await api.request({ method: 'GET', url: '/v2/webhooks' })).json.results.length, 0, 'nothing stored');
    });

    it("another client cannot see, delete or retry a subscription, nor list its deliveries", async () => {
      const mine = await create({ events: ['*'], name: 'mine', url: 'https://hooks.example.com/' });
      const other = await api.newTenant('webhooks-other');
      for (const [method, url] of [
        ['GET', `/v2/webhooks/${mine.json.id}`],
        ['DELETE', `/v2/webhooks/${mine.json.id}`],
        ['GET', `/v2/webhooks/${mine.json.id}/deliveries`],
        ['POST', `/v2/webhooks/${mine.json.id}/deliveries/${mine.json.id}/retry`],
      ] as const) {
        assert.equal((await api.request({ method, url, as: other })).status, 404, `${method} ${url}`);
      }
      assert.deepEqual((await api.request({ method: 'GET', url: '/v2/webhooks', as: other })).json.results, []);
      assert.equal((await api.request({ method: 'GET', url: `/v2/webhooks/${mine.json.id}` })).status, 200);
    });
  });

  describe(`webhook deliveries to a real receiver (${store})`, () => {
    let api: TestApi;
    let receiver: Receiver;
    before(async () => {
      api = await createTestApi(store, WEBHOOK_ENV);
      receiver = await startReceiver();
    });
    after(async () => {
      await api.close();
      await receiver.close();
    });

    it('every change of a scripted flow yields its event, in order, signed both ways, without personal data', async () => {
      const sub = await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['*'], name: 'flow', url: receiver.url, secret: SECRET, config: { include_resource: true } } });
      assert.equal(sub.status, 201, sub.body);
      const created = await api.request({ method: 'POST', url: '/v2/users', payload: { first_name: 'Ada', ssn: '123-45-6789', birth_date: { year: 1980, month: 1, day: 2 }, address: { city: 'Springfield' } } });
      const userId = created.json.id;
      const bearer = { authorization: `Bearer ${created.json.user_token}` };
      const link = (method: 'POST' | 'PATCH', url: string, payload: object) => api.request({ method, url, payload, as: null, headers: bearer });
      assert.equal((await api.request({ method: 'PATCH', url: `/v2/users/${userId}`, payload: { last_name: 'Lovelace' } })).status, 200);
      // A rejected change yields nothing.
      assert.equal((await api.request({ method: 'PATCH', url: `/v2/users/${userId}`, payload: { email: 'not-an-email' } })).status, 400);
      const account = (await link('POST', '/v2/link/accounts', { item: 'item_1', employers: ['Acme'] })).json.id;
      assert.equal((await link('PATCH', `/v2/link/accounts/${account}`, { connection: { status: 'error', error_code: 'invalid_credentials' } })).status, 200);
      assert.equal((await link('POST', '/v2/link/accounts', { item: 'item_1' })).status, 200);
      assert.equal((await link('PATCH', `/v2/link/accounts/${account}`, { connection: { status: 'connected' } })).status, 200);
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/accounts/${account}` })).status, 204);
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/users/${userId}` })).status, 204);

      const expected = ['users.created', 'users.updated', 'accounts.added', 'accounts.failed', 'accounts.updated', 'accounts.connected', 'accounts.removed', 'users.removed'];
      await eventually(() => receiver.received.length >= expected.length, () => `${receiver.received.length} of ${expected.length} events`);
      await new Promise((resolve) => setTimeout(resolve, 200)); // nothing more arrives
      const bodies = receiver.received.map((r) => JSON.parse(r.body) as Json);
      assert.deepEqual(bodies.map((b) => b.event), expected);
      const verifier = new StandardWebhook(Buffer.from(SECRET).toString('base64'));
      for (const [i, { headers, body }] of receiver.received.entries()) {
        const parsed = bodies[i]!;
        assert.deepEqual(Object.keys(parsed), ['event', 'name', 'data']);
        assert.equal(parsed.name, 'flow');
        assert.equal(parsed.data.user, userId);
        if (parsed.event.startsWith('accounts.')) assert.equal(parsed.data.account, account);
        assert.equal(headers['x-argyle-signature'], createHmac('sha512', SECRET).update(body).digest('hex'), `X-Argyle-Signature of ${parsed.event}`);
        verifier.verify(body, headers as Record<string, string>); // throws unless the Standard Webhooks signature holds
        for (const needle of ['123-45-6789', '123456789', 'Springfield', 'birth_date', '"ssn"', '"address"']) {
          assert.equal(body.includes(needle), false, `${parsed.event} carries ${needle}`);
        }
      }
      assert.equal(bodies[0]!.data.resource.first_name, 'Ada', 'include_resource sends the user (without its personal data)');
      assert.equal(bodies[1]!.data.resource.last_name, 'Lovelace', 'the event carries the state it was written with');
      assert.equal(bodies[5]!.data.resource.connection.status, 'connected');
      // The deliveries list says the same.
      const deliveries = await api.request({ method: 'GET', url: `/v2/webhooks/${sub.json.id}/deliveries?limit=20` });
      assert.deepEqual(deliveries.json.results.map((d: Json) => [d.event, d.status, d.attempts, d.last_response_code]), expected.map((e) => [e, 'delivered', 1, 200]));
    });

    it('a receiver that fails the first 2 attempts gets the event on the 3rd; the attempts show in the deliveries list', async () => {
      const failing = await startReceiver((n) => (n < 2 ? 503 : 204));
      try {
        const sub = await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.created'], name: 'flaky', url: failing.url } });
        const created = await api.request({ method: 'POST', url: '/v2/users', payload: {} });
        await eventually(() => failing.received.length >= 3, () => `${failing.received.length} attempts`);
        const list = async () => (await api.request({ method: 'GET', url: `/v2/webhooks/${sub.json.id}/deliveries` })).json.results as Json[];
        await eventually(async () => (await list())[0]?.status === 'delivered', () => 'not settled');
        const [delivery] = await list();
        assert.equal(delivery!.user, created.json.id);
        assert.equal(delivery!.attempts, 3);
        assert.equal(delivery!.last_response_code, 204);
        assert.equal(delivery!.next_attempt_at, null);
        // The same message id on every attempt (a receiver de-duplicates on it); no signature without a secret.
        assert.equal(new Set(failing.received.map((r) => r.headers['webhook-id'])).size, 1);
        assert.equal(failing.received[0]!.headers['x-argyle-signature'], undefined);
        assert.equal(failing.received[0]!.headers['webhook-signature'], undefined);
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(failing.received.length, 3, 'nothing is sent after a 2xx');
      } finally {
        await failing.close();
      }
    });

    it('events go to the subscriptions that exist when the change commits: none after a delete, all after a create', async () => {
      const first = await startReceiver();
      const second = await startReceiver();
      try {
        const subscribe = async (url: string) => (await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.created'], name: 'swap', url } })).json.id as string;
        const createUser = async () => {
          const res = await api.request({ method: 'POST', url: '/v2/users', payload: {} });
          assert.equal(res.status, 200, res.body);
          return res.json.id as string;
        };
        const a = await subscribe(first.url);
        const one = await createUser();
        assert.equal((await api.request({ method: 'DELETE', url: `/v2/webhooks/${a}` })).status, 204);
        const two = await createUser();
        await subscribe(second.url);
        const three = await createUser();
        await eventually(() => second.received.length >= 1, () => 'nothing at the second receiver');
        await new Promise((resolve) => setTimeout(resolve, 200));
        const users = (r: Receiver) => r.received.map((m) => (JSON.parse(m.body) as Json).data.user);
        // The first may or may not have received `one` before its subscription (and its deliveries) went away.
        assert.equal(users(first).every((u) => u === one), true, JSON.stringify(users(first)));
        assert.deepEqual(users(second), [three]);
        assert.notEqual(two, three);
      } finally {
        await first.close();
        await second.close();
      }
    });

    it('a subscription deleted between a change\'s read of the subscriptions and its commit gets no event, and the change commits', async () => {
      const as = await api.newTenant('gone-tenant'); // with no subscription of its own but this one
      const sub = (await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.created'], name: 'gone', url: receiver.url }, as })).json.id as string;
      const outbox = new WebhooksRepository(api.db, new PiiCipher(resolveSecrets(api.config).piiKeys));
      const user = (await api.request({ method: 'POST', url: '/v2/users', payload: {}, as })).json.id as string;
      const writes = await outbox.eventWrites(as.client_id, 'users.created', { user }, () => ({}));
      assert.equal(writes.length, 1, 'planned while the subscription existed');
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/webhooks/${sub}`, as })).status, 204);
      // SQLite plans from the subscriptions it holds in memory, so the event names the deleted one and the fan-out
      // drops it; on PostgreSQL the write itself finds the subscriptions, so it writes no event at all.
      assert.deepEqual(await runTogether(api.db, writes), [store === 'sqlite' ? 1 : 0], 'the event is written with the change or not at all');
      const events = () => api.db.selectFrom('webhook_events').select('seq').where('client_id', '=', as.client_id).execute();
      await eventually(async () => (await events()).length === 0, () => 'the event was not fanned out');
      const rows = await api.db.selectFrom('webhook_deliveries').select('id').where('webhook_id', '=', sub).execute();
      assert.deepEqual(rows, []);
    });

    if (store === 'postgres') {
      it('on PostgreSQL a subscription made between a change\'s planning and its commit gets the event (another instance may make it)', async () => {
        const as = await api.newTenant('late-tenant');
        const user = (await api.request({ method: 'POST', url: '/v2/users', payload: {}, as })).json.id as string;
        const outbox = new WebhooksRepository(api.db, new PiiCipher(resolveSecrets(api.config).piiKeys));
        const writes = await outbox.eventWrites(as.client_id, 'users.created', { user }, () => ({ id: user, first_name: 'Late' }));
        const payload = { events: ['users.created'], name: 'late', url: receiver.url, config: { include_resource: true } };
        const sub = (await api.request({ method: 'POST', url: '/v2/webhooks', payload, as })).json.id as string;
        assert.deepEqual(await runTogether(api.db, writes), [1], 'the event is written for the subscription committed before it');
        const rows = () => api.db.selectFrom('webhook_deliveries').select('status').where('webhook_id', '=', sub).execute();
        await eventually(async () => (await rows()).some((r) => r.status === 'delivered'), () => 'the event was not delivered');
        const body = receiver.received.map((m) => JSON.parse(m.body) as Json).find((b) => b.data.user === user);
        assert.deepEqual(body?.data, { user, resource: { id: user, first_name: 'Late' } });
      });
    }

    it('a change that rolls back yields no event', async () => {
      const sub = await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.created'], name: 'rollback', url: receiver.url } });
      const [install, uninstall] =
        store === 'sqlite'
          ? [sql`create trigger fail_key before insert on idempotency_keys begin select raise(abort, 'injected failure'); end`, sql`drop trigger fail_key`]
          : [
              sql`create function fail_key() returns trigger language plpgsql as $$ begin raise exception 'injected failure'; end $$;
                  create trigger fail_key before insert on idempotency_keys for each row execute function fail_key()`,
              sql`drop trigger fail_key on idempotency_keys; drop function fail_key()`,
            ];
      await install.execute(api.db);
      const users = await countUsers(api.db);
      try {
        // The user, its delivery and the idempotency record: one unit (on PostgreSQL one statement), all or none.
        const failed = await api.request({ method: 'POST', url: '/v2/users', payload: {}, headers: { 'idempotency-key': 'rolls-back' } });
        assert.equal(failed.status, 500);
        assert.equal(await countUsers(api.db), users, 'the user was written without its idempotency record');
      } finally {
        await uninstall.execute(api.db);
      }
      const rows = await api.db.selectFrom('webhook_deliveries').select('id').where('webhook_id', '=', sub.json.id).execute();
      assert.deepEqual(rows, []);
    });
  });

  describe(`the outbox: one event row per change, fanned out into deliveries (${store})`, () => {
    let api: TestApi;
    let outbox: WebhooksRepository;
    let cipher: PiiCipher;
    before(async () => {
      // Nothing fans out or delivers on its own here: the test does it.
      api = await createTestApi(store, { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_DELIVERY: 'false' });
      cipher = new PiiCipher(resolveSecrets(api.config).piiKeys);
      outbox = new WebhooksRepository(api.db, cipher);
    });
    after(() => api.close());

    const eventsOf = (clientId: string) => api.db.selectFrom('webhook_events').selectAll().where('client_id', '=', clientId).orderBy('seq').execute();
    const deliveriesOf = (webhookId: string) => api.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId).orderBy('seq').execute();

    it('a change writes one event naming the subscriptions that want it; fan-out makes one delivery each, encrypted when it carries the resource', async () => {
      const as = await api.newTenant('fan-out');
      const subscribe = async (payload: Json) => (await api.request({ method: 'POST', url: '/v2/webhooks', payload: { url: 'http://127.0.0.1:9/x', ...payload }, as })).json.id as string;
      const plain = await subscribe({ events: ['users.created'], name: 'plain' });
      const full = await subscribe({ events: ['*'], name: 'full', config: { include_resource: true } });
      const other = await subscribe({ events: ['accounts.added'], name: 'other' });
      const user = (await api.request({ method: 'POST', url: '/v2/users', payload: { first_name: 'Grace', email: 'grace@example.com' }, as })).json.id as string;
      const [event, ...more] = await eventsOf(as.client_id);
      assert.equal(more.length, 0, 'one event row for the change');
      assert.deepEqual([event!.event, event!.user_id, event!.account_id, event!.webhooks.split(',').sort()], ['users.created', user, null, [plain, full].sort()]);
      // The resource as the users table keeps the same fields (in clear), with nothing the table encrypts.
      assert.deepEqual(JSON.parse(event!.resource!), { ...JSON.parse(event!.resource!), id: user, first_name: 'Grace', email: 'grace@example.com' });
      assert.deepEqual(['ssn', 'birth_date', 'address'].filter((field) => field in JSON.parse(event!.resource!)), []);
      assert.deepEqual(await deliveriesOf(plain), [], 'no delivery before the fan-out');

      // Another tenant without subscriptions writes no event at all.
      const quiet = await api.newTenant('fan-out-quiet');
      await api.request({ method: 'POST', url: '/v2/users', payload: {}, as: quiet });
      assert.deepEqual(await eventsOf(quiet.client_id), []);

      let fanned = 0;
      for (let n = await outbox.fanOut(100); n > 0; n = await outbox.fanOut(100)) fanned += n;
      assert.ok(fanned >= 1);
      assert.deepEqual(await eventsOf(as.client_id), [], 'fanned-out events are deleted');
      const body = (row: { client_id: string; id: string; payload: string }) => JSON.parse(deliveryBody(row, cipher)) as Json;
      const [toPlain] = await deliveriesOf(plain);
      const [toFull] = await deliveriesOf(full);
      assert.equal(toFull!.payload.includes('grace'), false, 'a body with the resource is stored encrypted');
      assert.deepEqual(JSON.parse(toPlain!.payload), body(toPlain!), 'a body of ids and names is stored as sent');
      assert.deepEqual(body(toPlain!), { event: 'users.created', name: 'plain', data: { user } });
      assert.equal(body(toFull!).name, 'full');
      assert.deepEqual([body(toFull!).data.user, body(toFull!).data.resource.first_name, body(toFull!).data.resource.email], [user, 'Grace', 'grace@example.com']);
      assert.equal(body(toFull!).data.resource.ssn, undefined);
      assert.deepEqual(await deliveriesOf(other), []);
      assert.deepEqual([toPlain!.status, toPlain!.attempts, toPlain!.user_id], ['pending', 0, user]);
    });

    it('events and deliveries stored encrypted by an earlier version still go out as they were written', async () => {
      const as = await api.newTenant('fan-out-legacy');
      const full = (await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.updated'], name: 'legacy', url: 'http://127.0.0.1:9/x', config: { include_resource: true } }, as })).json.id as string;
      const user = '0196b0a5-1f2e-7000-8000-00000000a11c';
      const resource = { id: user, first_name: 'Ada' };
      await api.db
        .insertInto('webhook_events')
        .values({
          client_id: as.client_id,
          user_id: user,
          account_id: null,
          event: 'users.updated',
          webhooks: full,
          resource: cipher.encrypt(JSON.stringify(resource), WebhooksRepository.eventContext(as.client_id, user)),
          created_at: new Date().toISOString(),
        })
        .execute();
      while ((await outbox.fanOut(100)) > 0);
      const [delivery] = await deliveriesOf(full);
      assert.deepEqual(JSON.parse(deliveryBody(delivery!, cipher)), { event: 'users.updated', name: 'legacy', data: { user, resource } });
      // A body without the resource, encrypted as every body once was.
      const old = { event: 'users.created', name: 'legacy', data: { user } };
      const id = '0196b0a5-1f2e-7000-8000-00000000b0d1';
      const sealed = cipher.encrypt(JSON.stringify(old), WebhooksRepository.payloadContext(as.client_id, id));
      assert.deepEqual(JSON.parse(deliveryBody({ client_id: as.client_id, id, payload: sealed }, cipher)), old);
    });

    it('two fan-outs at once make each delivery once: the one that finds its events gone writes nothing', async () => {
      const as = await api.newTenant('fan-out-race');
      const sub = (await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.created'], name: 'race', url: 'http://127.0.0.1:9/x' }, as })).json.id as string;
      const users: string[] = [];
      for (let i = 0; i < 12; i++) users.push((await api.request({ method: 'POST', url: '/v2/users', payload: {}, as })).json.id as string);
      const second = new WebhooksRepository(api.db, cipher);
      const counts = await Promise.all([outbox.fanOut(100), second.fanOut(100)]);
      while ((await outbox.fanOut(100)) > 0);
      assert.ok(counts.includes(0), `both fan-outs wrote: ${counts.join(', ')}`);
      assert.deepEqual((await deliveriesOf(sub)).map((d) => d.user_id), users, 'one delivery per event, in commit order');
    });
  });

  describe(`delivery connections (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store, { ...WEBHOOK_ENV, WEBHOOK_TIMEOUT_MS: '400', WEBHOOK_MAX_ATTEMPTS: '1' });
    });
    after(() => api.close());

    /** A receiver that counts its connections; `respond` answers each request. */
    async function countingReceiver(respond: (res: import('node:http').ServerResponse) => void, keepAliveTimeoutMs = 5000) {
      let connections = 0;
      let requests = 0;
      const server = createServer((req, res) => {
        req.resume().on('end', () => {
          requests++;
          respond(res);
        });
      });
      server.keepAliveTimeout = keepAliveTimeoutMs;
      server.on('connection', () => connections++);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
        counts: () => ({ connections, requests }),
        close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
      };
    }

    const subscribe = async (url: string) => (await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.created'], name: 'conn', url } })).json.id as string;
    const deliveries = async (id: string) => (await api.request({ method: 'GET', url: `/v2/webhooks/${id}/deliveries?limit=50` })).json.results as Json[];

    it('deliveries one after another share a kept-alive connection', async () => {
      const receiver = await countingReceiver((res) => res.writeHead(204).end());
      try {
        const id = await subscribe(receiver.url);
        for (let i = 0; i < 5; i++) {
          await api.request({ method: 'POST', url: '/v2/users', payload: {} });
          await eventually(() => receiver.counts().requests > i, () => JSON.stringify(receiver.counts()));
        }
        assert.equal(receiver.counts().connections, 1, JSON.stringify(receiver.counts()));
        await eventually(async () => (await deliveries(id)).every((d) => d.status === 'delivered'), () => 'not settled');
      } finally {
        await receiver.close();
      }
    });

    it('a kept-alive connection the receiver drops as the next event goes out: sent again afresh, same attempt', async () => {
      // Each connection serves one request; a second one on it is cut off unanswered, as when a receiver closes an
      // idle connection just as a request is sent on it.
      const served = new WeakSet<object>();
      const receiver = await countingReceiver((res) => {
        if (served.has(res.socket!)) return void res.socket!.destroy();
        served.add(res.socket!);
        res.writeHead(204).end();
      });
      try {
        const id = await subscribe(receiver.url);
        for (let i = 0; i < 4; i++) {
          await api.request({ method: 'POST', url: '/v2/users', payload: {} });
          await eventually(async () => (await deliveries(id)).length > i && (await deliveries(id)).every((d) => d.status !== 'pending'), () => 'not settled');
        }
        assert.deepEqual((await deliveries(id)).map((d) => [d.status, d.attempts]), Array(4).fill(['delivered', 1]));
        assert.equal(receiver.counts().connections, 4, JSON.stringify(receiver.counts()));
      } finally {
        await receiver.close();
      }
    });

    it('an answer that trickles in past WEBHOOK_TIMEOUT_MS is no answer: the attempt fails', async () => {
      const receiver = await countingReceiver((res) => {
        res.writeHead(200);
        const drip = setInterval(() => res.write('.'), 100); // never ends within the timeout
        res.on('close', () => clearInterval(drip));
      });
      try {
        const id = await subscribe(receiver.url);
        await api.request({ method: 'POST', url: '/v2/users', payload: {} });
        await eventually(async () => (await deliveries(id))[0]?.status === 'failed', () => 'not settled', 5000);
        const [failed] = await deliveries(id);
        assert.equal(failed!.last_error, 'no answer within 400 ms');
        assert.equal(failed!.last_response_code, null);
      } finally {
        await receiver.close();
      }
    });
  });

  describe(`old deliveries are deleted after WEBHOOK_RETENTION_DAYS (${store})`, () => {
    it('settled deliveries older than the retention go; recent ones and pending ones stay', async () => {
      const api = await createTestApi(store, { ...WEBHOOK_ENV, WEBHOOK_RETENTION_DAYS: '30' });
      const receiver = await startReceiver();
      try {
        const sub = (await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.created'], name: 'old', url: receiver.url } })).json.id as string;
        for (let i = 0; i < 4; i++) await api.request({ method: 'POST', url: '/v2/users', payload: {} });
        const rows = async () => api.db.selectFrom('webhook_deliveries').select(['id', 'status']).where('webhook_id', '=', sub).orderBy('seq').execute();
        await eventually(async () => {
          const all = await rows();
          return all.length === 4 && all.every((r) => r.status === 'delivered');
        }, () => 'not delivered');
        // The first app has looked for old deliveries at its start, when there were none; a second one starts now.
        // Two delivered 40 days ago, one failed 31 days ago, one delivered 29 days ago, one pending from 40 days ago.
        const [a, b, c, d] = (await rows()).map((r) => r.id);
        const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString();
        const age = (id: string | undefined, days: number, status?: 'failed' | 'pending') =>
          api.db.updateTable('webhook_deliveries').set({ created_at: daysAgo(days), ...(status ? { status } : {}) }).where('id', '=', id!).execute();
        await age(a, 40);
        await age(b, 40);
        await age(c, 31, 'failed');
        await age(d, 29);
        await api.db.updateTable('webhooks').set({ url: 'http://127.0.0.1:9/closed' }).where('id', '=', sub).execute();
        const pending = (await api.db.selectFrom('webhook_deliveries').select('id').where('id', '=', a!).executeTakeFirstOrThrow()).id;
        await api.db.insertInto('webhook_deliveries').values({
          ...(await api.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', pending).executeTakeFirstOrThrow()),
          seq: undefined as never,
          id: '0190a000-0000-7000-8000-000000000001',
          status: 'pending',
          next_attempt_at: daysAgo(-1), // not due: the closed port is never tried within the test
        }).execute();
        const again = await buildApp(api.config, { db: api.db, secrets: resolveSecrets(api.config) });
        await again.ready();
        try {
          await eventually(async () => (await rows()).length === 2, () => 'old deliveries still there');
          assert.deepEqual((await rows()).map((r) => [r.id, r.status]), [[d, 'delivered'], ['0190a000-0000-7000-8000-000000000001', 'pending']]);
        } finally {
          await again.close();
        }
      } finally {
        await receiver.close();
        await api.close();
      }
    });
  });

  describe(`a delivery that failed every attempt can be retried (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store, { ...WEBHOOK_ENV, WEBHOOK_MAX_ATTEMPTS: '2' });
    });
    after(() => api.close());

    it('failed after WEBHOOK_MAX_ATTEMPTS; POST .../retry makes it due again and it is delivered', async () => {
      let healthy = false;
      const receiver = await startReceiver(() => (healthy ? 200 : 500));
      try {
        const sub = await api.request({ method: 'POST', url: '/v2/webhooks', payload: { events: ['users.created'], name: 'down', url: receiver.url } });
        await api.request({ method: 'POST', url: '/v2/users', payload: {} });
        const list = async () => (await api.request({ method: 'GET', url: `/v2/webhooks/${sub.json.id}/deliveries` })).json.results as Json[];
        await eventually(async () => (await list())[0]?.status === 'failed', () => JSON.stringify(receiver.received.length));
        const [failed] = await list();
        assert.equal(failed!.attempts, 2);
        assert.equal(failed!.last_response_code, 500);
        assert.equal(receiver.received.length, 2);
        healthy = true;
        const retried = await api.request({ method: 'POST', url: `/v2/webhooks/${sub.json.id}/deliveries/${failed!.id}/retry` });
        assert.equal(retried.status, 202, retried.body);
        assert.equal(retried.json.status, 'pending');
        await eventually(async () => (await list())[0]?.status === 'delivered', () => 'not delivered after the retry');
        const again = await api.request({ method: 'POST', url: `/v2/webhooks/${sub.json.id}/deliveries/${failed!.id}/retry` });
        assert.equal(again.status, 409);
      } finally {
        await receiver.close();
      }
    });
  });
}
