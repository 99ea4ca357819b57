// Metrics and traces, each loaded only when configured: with neither, nothing of prom-client or OpenTelemetry is loaded,
// no hook is added and the store is not observed.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { DbObserver } from '../db/observer.js';
import type { DeliveryObserver } from '../webhooks/webhooks.dispatcher.js';
import type { Metrics } from './metrics.js';
import type { Tracing } from './tracing.js';

export class Telemetry {
  /** What the store reports to whichever is on (see db/observer.ts). */
  readonly db: DbObserver;
  readonly deliveries: DeliveryObserver;

  private constructor(
    private readonly metrics: Metrics | undefined,
    private readonly tracing: Tracing | undefined,
    private readonly log: Logger,
  ) {
    this.db = { ...tracing?.db, ...metrics?.db };
    const observers = [metrics?.deliveries, tracing?.deliveries].filter((o) => o !== undefined);
    this.deliveries = {
      attempting: (event) => {
        const ends = observers.map((observer) => observer.attempting(event));
        return (result, statusCode) => ends.forEach((end) => end(result, statusCode));
      },
    };
  }

  /** Undefined when neither METRICS_PORT nor an OTLP endpoint is set. */
  static async start(config: Config, log: Logger): Promise<Telemetry | undefined> {
    if (!config.metrics && !config.tracing) return undefined;
    const store = config.database.kind;
    const metrics = config.metrics && new (await import('./metrics.js')).Metrics(config.metrics, store);
    const tracing = config.tracing && new (await import('./tracing.js')).Tracing(config.tracing, store);
    return new Telemetry(metrics, tracing, log);
  }

  /** The request hooks of what is on; before any route, so that tracing wraps every handler. */
  register(app: FastifyInstance): void {
    this.tracing?.register(app);
    this.metrics?.register(app);
  }

  /** Once the store is open: the gauges read from it at each scrape. */
  watch(db: Db): void {
    this.metrics?.watch(db);
  }

  /** Starts the metrics server (with METRICS_PORT). */
  async listen(): Promise<void> {
    await this.metrics?.listen(this.log);
  }

  /** Stops the metrics server and sends the last spans. */
  async stop(): Promise<void> {
    await Promise.all([this.metrics?.close(), this.tracing?.shutdown(this.log)]);
  }
}
