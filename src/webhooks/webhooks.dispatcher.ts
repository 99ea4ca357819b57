// Delivers the outbox: claims due deliveries, POSTs them signed, and settles each as delivered, due again
// (exponential backoff with jitter) or failed. Runs beside the API in every instance; never on a request's path.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { FastifyBaseLogger } from 'fastify';
import type { WebhookSettings } from '../config.js';
import { isoMicros, nowMicros } from '../clock.js';
import type { PiiCipher } from '../pii/pii.cipher.js';
import { guardedLookup } from './webhooks.address.js';
import { WebhooksRepository, type DeliveryRow } from './webhooks.repository.js';
import { signatureHeaders } from './webhooks.signing.js';

/** The WEBHOOK_* settings the dispatcher works by (src/config.ts). */
export type DeliveryOptions = Omit<WebhookSettings, 'deliver'>;

/** Bytes of a receiver's answer read before the connection is dropped. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * Idle keep-alive connections to receivers are closed after this: below the 5 s that Node.js and most servers keep
 * an idle connection open, so that a request seldom meets a connection the receiver is closing.
 */
const IDLE_SOCKET_MS = 4000;

/** The delay before attempt `attempts + 1`: base · 3^(attempts-1), jittered. */
export function retryDelayMs(attempts: number, baseMs: number, random = Math.random): number {
  return Math.round(baseMs * 3 ** Math.max(0, attempts - 1) * (0.8 + 0.4 * random()));
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
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
      });
    }, delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    let claimed = 0;
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
          const lanes = Array.from({ length: Math.min(perSubscription, queue.length) }, async () => {
            for (let row = queue.shift(); row; row = queue.shift()) {
              await this.deliver(row, target).catch((error: unknown) => this.log.error({ err: error, delivery: row?.id }, 'webhook delivery failed'));
            }
          });
          await Promise.all(lanes);
        }),
      );
    } catch (error) {
      this.log.warn({ err: error }, 'webhook delivery round failed');
    }
    // A full batch means more may be due: go again at once.
    this.schedule(claimed >= this.options.concurrency ? 0 : this.options.pollMs);
  }

  /** Where a subscription's deliveries go, and the secret that signs them: read once per round. */
  private async target(row: DeliveryRow): Promise<{ url: string; secret: string | null } | undefined> {
    const subscription = await this.repo.findSubscription(row.client_id, row.webhook_id);
    if (!subscription) return undefined;
    const secret =
      subscription.secret === null ? null : this.cipher.decrypt(subscription.secret, WebhooksRepository.secretContext(row.client_id, row.webhook_id));
    return { url: subscription.url, secret };
  }

  private async deliver(row: DeliveryRow, target: { url: string; secret: string | null }): Promise<void> {
    const body = this.cipher.decrypt(row.payload, WebhooksRepository.payloadContext(row.client_id, row.id));
    let outcome = await this.post(target.url, row.id, body, target.secret);
    // A kept-alive connection the receiver closed meanwhile: the request never reached it; once more, afresh.
    if (outcome.staleConnection) outcome = await this.post(target.url, row.id, body, target.secret);
    const delivered = outcome.statusCode !== null && outcome.statusCode >= 200 && outcome.statusCode < 300;
    const exhausted = row.attempts >= this.options.maxAttempts;
    await this.repo.settle(row, {
      status: delivered ? 'delivered' : exhausted ? 'failed' : 'pending',
      next_attempt_at: delivered || exhausted ? row.next_attempt_at : isoMicros(nowMicros() + retryDelayMs(row.attempts, this.options.retryBaseMs) * 1000),
      last_status_code: outcome.statusCode,
      last_error: delivered ? null : (outcome.error ?? `HTTP ${outcome.statusCode}`),
      delivered_at: delivered ? isoMicros(nowMicros()) : null,
    });
    if (!delivered) {
      this.log.info({ delivery: row.id, webhook: row.webhook_id, attempts: row.attempts, statusCode: outcome.statusCode, failed: exhausted }, 'webhook delivery attempt failed');
    }
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
