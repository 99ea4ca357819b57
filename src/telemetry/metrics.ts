// Prometheus metrics (prom-client) on a port of their own, never beside the API. Loaded only when METRICS_PORT is set.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DatabaseConfig, MetricsSettings } from '../config.js';
import { postgresPoolOf, type Db } from '../db/database.js';
import type { DbObserver } from '../db/observer.js';
import { wasShed } from '../http/limits.js';
import type { DeliveryObserver, DeliveryResult } from '../webhooks/webhooks.dispatcher.js';
import { countPendingDeliveries } from '../webhooks/webhooks.repository.js';

/** The route label of a request that matched no route (a 404 for a path a client typed: never written as it is). */
export const UNMATCHED_ROUTE = 'unmatched';

const HTTP_LABELS = ['route', 'method', 'status'] as const;
const DELIVERY_RESULTS: readonly DeliveryResult[] = ['delivered', 'retry', 'failed'];

/** One route, method and status: its children of the request counter and histogram, found once. */
interface Series {
  requests: Counter.Internal;
  duration: Histogram.Internal<(typeof HTTP_LABELS)[number]>;
}

/** `host:port` as it goes in a URL. */
const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

export class Metrics {
  readonly registry = new Registry();
  private server: Server | undefined;
  private inFlight = 0;
  private readonly series = new Map<string, Series>();
  private readonly requests;
  private readonly duration;
  private readonly replays;
  private readonly throttled;
  private readonly shed;
  private readonly commitWrites;
  private readonly commitSeconds;
  private readonly attempts;

  constructor(
    private readonly settings: MetricsSettings,
    store: DatabaseConfig['kind'],
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'users_api_http_requests_total',
      help: 'HTTP requests answered, by route pattern, method and status.',
      labelNames: HTTP_LABELS,
      registers,
    });
    this.duration = new Histogram({
      name: 'users_api_http_request_duration_seconds',
      help: 'Time from a request arriving to its response sent, by route pattern, method and status.',
      labelNames: HTTP_LABELS,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    const inFlight = () => this.inFlight;
    new Gauge({
      name: 'users_api_http_requests_in_flight',
      help: 'HTTP requests received and not yet answered (or cut off).',
      registers,
      collect() {
        this.set(inFlight());
      },
    });
    this.replays = new Counter({
      name: 'users_api_idempotency_replays_total',
      help: 'Requests answered with the stored response of an earlier one with the same Idempotency-Key, by route pattern.',
      labelNames: ['route'] as const,
      registers,
    });
    this.throttled = new Counter({
      name: 'users_api_rate_limit_rejections_total',
      help: 'Requests refused with 429 because their API key (or Link user) spent its budget, by route pattern.',
      labelNames: ['route'] as const,
      registers,
    });
    this.shed = new Counter({
      name: 'users_api_load_shed_total',
      help: 'Requests refused with 503 because the event loop lagged past MAX_EVENT_LOOP_DELAY_MS, by route pattern.',
      labelNames: ['route'] as const,
      registers,
    });
    this.attempts = new Counter({
      name: 'users_api_webhook_delivery_attempts_total',
      help: 'Webhook delivery attempts by outcome: delivered, retry (due again later) or failed (attempts spent).',
      labelNames: ['outcome'] as const,
      registers,
    });
    for (const outcome of DELIVERY_RESULTS) this.attempts.labels(outcome).inc(0);
    if (store === 'sqlite') {
      this.commitWrites = new Histogram({
        name: 'users_api_sqlite_group_commit_writes',
        help: 'Writes (requests, deliveries settled, ...) that shared one SQLite commit.',
        buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
        registers,
      });
      this.commitSeconds = new Histogram({
        name: 'users_api_sqlite_group_commit_duration_seconds',
        help: "Time SQLite's COMMIT of one group took: the fsync with SQLITE_SYNCHRONOUS=full.",
        buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        registers,
      });
    }
  }

  /** What the store reports: the group commits (SQLite). */
  readonly db: DbObserver = {
    groupCommitted: (writes, seconds) => {
      this.commitWrites?.observe(writes);
      this.commitSeconds?.observe(seconds);
    },
  };

  readonly deliveries: DeliveryObserver = {
    attempting: () => (result) => this.attempts.labels(result).inc(),
  };

  /**
   * Two hooks: onRequest counts the request in flight until its response closes (sent or cut off: onResponse never
   * runs for a request whose client went away); onResponse counts it by route pattern, method and status, with its
   * time from Fastify's own clock (reply.elapsedTime).
   */
  register(app: FastifyInstance): void {
    const ended = () => {
      this.inFlight--;
    };
    app.addHook('onRequest', (_request, reply, done) => {
      this.inFlight++;
      reply.raw.on('close', ended);
      done();
    });
    app.addHook('onResponse', (request, reply, done) => {
      this.answered(request, reply);
      done();
    });
  }

  private answered(request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const status = reply.statusCode;
    const key = `${request.method} ${status} ${route}`;
    let series = this.series.get(key);
    if (series === undefined) {
      const labels = { route, method: request.method, status: String(status) };
      series = { requests: this.requests.labels(labels), duration: this.duration.labels(labels) };
      this.series.set(key, series);
    }
    series.requests.inc();
    series.duration.observe(reply.elapsedTime / 1000);
    if (status === 429) this.throttled.labels(route).inc();
    else if (status === 503 && wasShed(request)) this.shed.labels(route).inc();
    else if (reply.getHeader('idempotent-replayed') === 'true') this.replays.labels(route).inc();
  }

  /** Gauges read from the store at each scrape: the PostgreSQL pool's connections, and the outbox's depth. */
  watch(db: Db): void {
    const registers = [this.registry];
    const pool = postgresPoolOf(db);
    if (pool) {
      new Gauge({
        name: 'users_api_db_pool_connections',
        help: 'PostgreSQL connections open in the pool, in use or idle.',
        registers,
        collect() {
          this.set(pool.totalCount);
        },
      });
      new Gauge({
        name: 'users_api_db_pool_idle_connections',
        help: 'PostgreSQL connections open in the pool and idle.',
        registers,
        collect() {
          this.set(pool.idleCount);
        },
      });
      new Gauge({
        name: 'users_api_db_pool_waiting_requests',
        help: 'Queries waiting for a PostgreSQL connection from the pool.',
        registers,
        collect() {
          this.set(pool.waitingCount);
        },
      });
    }
    // Scrapes at the same moment share one count.
    let counting: Promise<number> | undefined;
    new Gauge({
      name: 'users_api_webhook_outbox_pending',
      help: "Webhook deliveries still to be made, due or waiting for a retry: the store's, so every instance on it reports the same.",
      registers,
      async collect() {
        try {
          this.set(await (counting ??= countPendingDeliveries(db).finally(() => (counting = undefined))));
        } catch {
          // The store did not answer: no value rather than a stale one, and the rest of the scrape still goes out.
          this.reset();
        }
      },
    });
  }

  /** Serves GET /metrics on METRICS_HOST:METRICS_PORT until close(). */
  async listen(log: Logger): Promise<void> {
    const server = createServer((req, res) => void this.answer(req, res, log));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.settings.port, this.settings.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    log.info(`Metrics listening at http://${hostPort(this.settings.host, port)}/metrics`);
  }

  private async answer(req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: the metrics are at /metrics.\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('Method not allowed.\n');
      return;
    }
    try {
      const body = await this.registry.metrics();
      res.writeHead(200, { 'content-type': this.registry.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
    } catch (error) {
      log.warn({ err: error }, 'collecting metrics failed');
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Collecting metrics failed.\n');
    }
  }

  async close(): Promise<void> {
    const { server } = this;
    if (!server) return;
    this.server = undefined;
    // A scraper's keep-alive connection must not hold up the shutdown.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}
