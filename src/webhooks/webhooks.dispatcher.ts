// Delivers the outbox: fans new events out into deliveries, claims due deliveries, POSTs them signed, and settles
// each as delivered, due again (exponential backoff with jitter) or failed. Runs beside the API in every instance;
// never on a request's path.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { signatureHeaders } from '@users-api/client/signing';
import type { FastifyBaseLogger } from 'fastify';
import type { WebhookSettings } from '../config.js';
import { isoMicros, nowMicros } from '../clock.js';
import type { PiiCipher } from '../pii/pii.cipher.js';
import { guardedLookup } from './webhooks.address.js';
import { clearOrDecrypted, WebhooksRepository, type DeliveryRow, type Settled } from './webhooks.repository.js';

/** The WEBHOOK_* settings the dispatcher works by (src/config.ts). */
export type DeliveryOptions = Omit<WebhookSettings, 'deliver'>;

/** How an attempt ended: delivered, due again later, or failed for good (its attempts spent). */
export type DeliveryResult = 'delivered' | 'retry' | 'failed';

/** Sees each delivery attempt (metrics and traces); without one the dispatcher does nothing more. */
export interface DeliveryObserver {
  /** An attempt to deliver `event` begins; the function returned is called once with how it ended. */
  attempting(event: string): (result: DeliveryResult, statusCode: number | null) => void;
}

/** Bytes of a receiver's answer read before the connection is dropped. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * Idle keep-alive connections to receivers are closed after this: below the 5 s that Node.js and most servers keep
 * an idle connection open, so that a request seldom meets a connection the receiver is closing.
 */
const IDLE_SOCKET_MS = 4000;

/** What a delivery sends: its payload as stored, or decrypted when it carries the resource (not JSON then). */
export function deliveryBody(row: Pick<DeliveryRow, 'client_id' | 'id' | 'payload'>, cipher: PiiCipher): string {
  return clearOrDecrypted(row.payload, cipher, WebhooksRepository.payloadContext(row.client_id, row.id));
}

/** The delay before attempt `attempts + 1`: base · 3^(attempts-1), jittered. */
export function retryDelayMs(attempts: number, baseMs: number, random = Math.random): number {
  return Math.round(baseMs * 3 ** Math.max(0, attempts - 1) * (0.8 + 0.4 * random()));
}

/**
 * Events fanned out into deliveries per round. On SQLite a round's inserts run in one go on the event loop, so this
 * bounds how long the API waits for it.
 */
const FAN_OUT_BATCH = 50;

const PRUNE_EVERY_MS = 60_000;
const PRUNE_BATCH = 1000;
const PRUNE_ROUNDS = 20;

/** Under full load, the share of the event loop's time that delivery rounds still get. */
export const MIN_DELIVERY_SHARE = 0.05;
/** The longest pause between two rounds while a backlog waits. */
const MAX_YIELD_MS = 1000;

/**
 * The pause after a round that took `roundMs` before the next one, while more is due: the API goes first. With the
 * API idle the next round starts at once; the busier it was (`apiLoad`, its share of the loop between rounds),
 * the longer the pause, down to MIN_DELIVERY_SHARE of the time for deliveries when it takes the whole loop. A
 * backlog built up under full load is delivered once the load eases; it is in the store, so nothing is lost.
 */
export function yieldMs(roundMs: number, apiLoad: number): number {
  const share = Math.min(1, Math.max(MIN_DELIVERY_SHARE, 1 - apiLoad));
  return Math.min(MAX_YIELD_MS, Math.round(roundMs * (1 / share - 1)));
}

/** How long an outcome may wait to be recorded with others (one commit for many). */
const SETTLE_BATCH_MS = 200;

/**
 * The outcomes of a subscription's deliveries, recorded together: one commit (one fsync on the embedded store) per
 * batch instead of one per delivery. An outcome not yet recorded when the process dies is sent again after the
 * lease (at least once); one waits at most SETTLE_BATCH_MS after the next outcome arrives, or until the batch ends.
 */
class Settles {
  private settled: Settled[] = [];
  private since = 0;

  constructor(private readonly repo: WebhooksRepository) {}

  async add(attempt: Settled): Promise<void> {
    if (this.settled.length === 0) this.since = Date.now();
    this.settled.push(attempt);
    if (Date.now() - this.since >= SETTLE_BATCH_MS) await this.flush();
  }

  async flush(): Promise<void> {
    const settled = this.settled;
    this.settled = [];
    await this.repo.settleAll(settled);
  }
}

interface Outcome {
  statusCode: number | null;
  error: string | null;
  /** The request failed on a reused keep-alive connection before any answer (the receiver had closed it). */
  staleConnection?: boolean;
}

export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** When old deliveries were last looked for (0: not yet in this process). */
  private prunedAt = 0;
  /** The share of the event loop the API used between the last two rounds. */
  private apiLoad = 0;
  /**
   * Connections to receivers are kept open between deliveries (a TLS handshake per event would cost more than the
   * event). The address guard runs whenever a connection is opened.
   */
  private readonly agents;

  constructor(
    private readonly repo: WebhooksRepository,
    private readonly cipher: PiiCipher,
    private readonly options: DeliveryOptions,
    private readonly log: FastifyBaseLogger,
    private readonly observer?: DeliveryObserver,
  ) {
    const agentOptions = { keepAlive: true, timeout: IDLE_SOCKET_MS, maxSockets: options.concurrency, maxFreeSockets: options.concurrency };
    this.agents = { http: new HttpAgent(agentOptions), https: new HttpsAgent(agentOptions) };
  }

  /** On the embedded store this process is the only deliverer: leases left by an earlier (crashed) run are void. */
  async start(): Promise<void> {
    this.stopped = false;
    if (this.repo.singleDeliverer) await this.repo.releaseAllLeases();
    this.schedule(0);
  }

  /** Stops claiming; resolves once the deliveries in flight have settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    // The event loop between two rounds serves the API alone: how busy it is there says how busy the API is.
    const between = performance.eventLoopUtilization();
    this.timer = setTimeout(() => {
      this.apiLoad = performance.eventLoopUtilization(between).utilization;
      this.running = this.tick().finally(() => {
        this.running = undefined;
      });
    }, delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    let claimed = 0;
    let fanned = 0;
    const started = performance.now();
    try {
      fanned = await this.repo.fanOut(FAN_OUT_BATCH);
    } catch (error) {
      this.log.warn({ err: error }, 'webhook fan-out failed');
    }
    try {
      const { concurrency, perSubscription, timeoutMs } = this.options;
      // Long enough for a subscription's share of the batch to go out perSubscription at a time; after it, another
      // instance takes over the deliveries of one that crashed.
      const leaseMs = timeoutMs * (Math.ceil(concurrency / perSubscription) + 1);
      const rows = await this.repo.claimDue(concurrency, leaseMs);
      claimed = rows.length;
      const bySubscription = new Map<string, DeliveryRow[]>();
      for (const row of rows) bySubscription.set(row.webhook_id, [...(bySubscription.get(row.webhook_id) ?? []), row]);
      // One slow receiver holds at most perSubscription sockets; the others go on meanwhile.
      await Promise.all(
        [...bySubscription.values()].map(async (queue) => {
          const target = await this.target(queue[0]!);
          if (!target) return; // deleted meanwhile: its deliveries went with it
          const settles = new Settles(this.repo);
          const lanes = Array.from({ length: Math.min(perSubscription, queue.length) }, async () => {
            for (let row = queue.shift(); row; row = queue.shift()) {
              try {
                await settles.add(await this.attempt(row, target));
              } catch (error) {
                this.log.error({ err: error, delivery: row.id }, 'webhook delivery failed');
              }
            }
          });
          await Promise.all(lanes);
          await settles.flush();
        }),
      );
    } catch (error) {
      this.log.warn({ err: error }, 'webhook delivery round failed');
    }
    const more = claimed >= this.options.concurrency || fanned >= FAN_OUT_BATCH;
    if (!more) await this.pruneNowAndThen();
    // A full batch means more may be due: go again, as soon as the API leaves room for it.
    this.schedule(more ? yieldMs(performance.now() - started, this.apiLoad) : this.options.pollMs);
  }

  /**
   * Deletes settled deliveries past WEBHOOK_RETENTION_DAYS, at most once a minute and only in a round that found
   * the outbox drained, a bounded number per time so that it never holds the store for long.
   */
  private async pruneNowAndThen(): Promise<void> {
    const { retentionDays } = this.options;
    if (retentionDays === 0 || Date.now() - this.prunedAt < PRUNE_EVERY_MS) return;
    this.prunedAt = Date.now();
    const before = isoMicros(nowMicros() - retentionDays * 86_400_000_000);
    try {
      for (let round = 0; round < PRUNE_ROUNDS; round++) {
        if ((await this.repo.deleteSettledBefore(before, PRUNE_BATCH)) < PRUNE_BATCH) break;
      }
    } catch (error) {
      this.log.warn({ err: error }, 'deleting old webhook deliveries failed');
    }
  }

  /** Where a subscription's deliveries go, and the secret that signs them: read once per round. */
  private async target(row: DeliveryRow): Promise<{ url: string; secret: string | null } | undefined> {
    const subscription = await this.repo.findSubscription(row.client_id, row.webhook_id);
    if (!subscription) return undefined;
    const secret =
      subscription.secret === null ? null : this.cipher.decrypt(subscription.secret, WebhooksRepository.secretContext(row.client_id, row.webhook_id));
    return { url: subscription.url, secret };
  }

  /** Sends one delivery; returns what its outcome settles. */
  private async attempt(row: DeliveryRow, target: { url: string; secret: string | null }): Promise<Settled> {
    const body = deliveryBody(row, this.cipher);
    const ended = this.observer?.attempting(row.event);
    let outcome = await this.post(target.url, row.id, body, target.secret);
    // A kept-alive connection the receiver closed meanwhile: the request never reached it; once more, afresh.
    if (outcome.staleConnection) outcome = await this.post(target.url, row.id, body, target.secret);
    const delivered = outcome.statusCode !== null && outcome.statusCode >= 200 && outcome.statusCode < 300;
    const exhausted = row.attempts >= this.options.maxAttempts;
    ended?.(delivered ? 'delivered' : exhausted ? 'failed' : 'retry', outcome.statusCode);
    if (!delivered) {
      this.log.info({ delivery: row.id, webhook: row.webhook_id, attempts: row.attempts, statusCode: outcome.statusCode, failed: exhausted }, 'webhook delivery attempt failed');
    }
    return {
      row,
      outcome: {
        status: delivered ? 'delivered' : exhausted ? 'failed' : 'pending',
        next_attempt_at: delivered || exhausted ? row.next_attempt_at : isoMicros(nowMicros() + retryDelayMs(row.attempts, this.options.retryBaseMs) * 1000),
        last_status_code: outcome.statusCode,
        last_error: delivered ? null : (outcome.error ?? `HTTP ${outcome.statusCode}`),
        delivered_at: delivered ? isoMicros(nowMicros()) : null,
      },
    };
  }

  /** One POST; any answer within the timeout is an outcome, its body read up to 64 KiB and discarded. */
  private post(url: string, id: string, body: string, secret: string | null): Promise<Outcome> {
    return new Promise((resolve) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        resolve({ statusCode: null, error: 'invalid URL' });
        return;
      }
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'users-api-webhooks/1',
        ...(secret === null
          ? { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) }
          : signatureHeaders(secret, id, Math.floor(Date.now() / 1000), body)),
      };
      const https = target.protocol === 'https:';
      const send = https ? httpsRequest : httpRequest;
      const req = send(target, {
        method: 'POST',
        agent: https ? this.agents.https : this.agents.http,
        headers,
        lookup: guardedLookup(this.options.allowPrivate),
      });
      let settled = false;
      let answered = false;
      /** `reuse`: the answer was read to its end, so the connection may serve the next delivery. */
      const finish = (outcome: Outcome, reuse = false) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(outcome);
        if (!reuse) req.destroy();
      };
      // The whole exchange, not just each silence, must end within the timeout.
      const deadline = setTimeout(() => finish({ statusCode: null, error: `no answer within ${this.options.timeoutMs} ms` }), this.options.timeoutMs);
      req.on('response', (res: IncomingMessage) => {
        answered = true;
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > MAX_RESPONSE_BYTES) finish({ statusCode: res.statusCode ?? null, error: null });
        });
        res.on('end', () => finish({ statusCode: res.statusCode ?? null, error: null }, true));
        res.on('error', () => finish({ statusCode: res.statusCode ?? null, error: null }));
      });
      req.on('error', (error: Error & { code?: string }) => {
        const stale = req.reusedSocket && !answered && (error.code === 'ECONNRESET' || error.code === 'EPIPE');
        finish({ statusCode: null, error: error.code ?? error.message, ...(stale ? { staleConnection: true } : {}) });
      });
      req.end(body);
    });
  }
}
