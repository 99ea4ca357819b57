// OpenTelemetry traces, exported over OTLP/HTTP (JSON). Loaded only when an OTLP endpoint is configured.
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { FastifyInstance, FastifyRequest, RouteHandlerMethod } from 'fastify';
import type { Logger } from 'pino';
import type { DatabaseConfig, TracingSettings } from '../config.js';
import type { DbObserver } from '../db/observer.js';
import type { DeliveryObserver } from '../webhooks/webhooks.dispatcher.js';

/** The longest the last spans are given to reach the collector at shutdown. */
const FLUSH_TIMEOUT_MS = 5000;

/** The operation (and table) of a statement: its name and attributes, never its text's values or its parameters. */
interface StatementSpan {
  name: string;
  attributes: Attributes;
}

// `with w0 as (insert ...)`, the PostgreSQL unit of several inserts, is an INSERT.
const OPERATION = /^\s*(?:with\s+\w+\s+as\s*\(\s*)?([a-z]+)/i;
const TABLE = /\b(?:from|into|update)\s+"?([a-z_][a-z0-9_]*)"?/i;

function describeStatement(system: string, text: string): StatementSpan {
  const operation = OPERATION.exec(text)?.[1]?.toUpperCase() ?? 'QUERY';
  const table = operation === 'BEGIN' || operation === 'COMMIT' || operation === 'ROLLBACK' ? undefined : TABLE.exec(text)?.[1];
  return {
    name: table ? `${operation} ${table}` : operation,
    attributes: { 'db.system': system, 'db.operation.name': operation, ...(table ? { 'db.collection.name': table } : {}) },
  };
}

/** A failure's kind for a span: a driver's code or the error's class, never its message (it may quote a value). */
function failed(span: Span, error: unknown): void {
  const code = (error as { code?: unknown } | null)?.code;
  span.setAttribute('error.type', typeof code === 'string' ? code : error instanceof Error ? error.constructor.name : 'error');
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

export class Tracing {
  private readonly provider: NodeTracerProvider;
  private readonly tracer: Tracer;
  /** The span of each request in progress. */
  private readonly spans = new WeakMap<FastifyRequest, Span>();
  /** Statement texts are a small fixed set: each described once. */
  private readonly statements = new Map<string, StatementSpan>();
  private readonly system: string;

  constructor(settings: TracingSettings, store: DatabaseConfig['kind']) {
    this.system = store === 'postgres' ? 'postgresql' : 'sqlite';
    // Headers, timeouts and batching follow the standard variables (OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*), read by the SDK.
    this.provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ 'service.name': settings.serviceName }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.url }))],
    });
    // The context manager (AsyncLocalStorage) and the W3C traceparent propagator.
    this.provider.register();
    this.tracer = this.provider.getTracer('users-api');
  }

  /** A span per statement (or group-commit unit) run on behalf of a traced request; background polls make none. */
  readonly db: DbObserver = {
    statement: <T>(text: string, execute: () => T): T => {
      const active = context.active();
      if (trace.getSpan(active) === undefined) return execute();
      let described = this.statements.get(text);
      if (described === undefined) {
        described = describeStatement(this.system, text);
        if (this.statements.size < 1000) this.statements.set(text, described);
      }
      const span = this.tracer.startSpan(described.name, { kind: SpanKind.CLIENT, attributes: described.attributes }, active);
      let result: T;
      try {
        result = execute();
      } catch (error) {
        failed(span, error);
        throw error;
      }
      if (!(result instanceof Promise)) {
        span.end();
        return result;
      }
      return result.then(
        (value: unknown) => {
          span.end();
          return value;
        },
        (error: unknown) => {
          failed(span, error);
          throw error;
        },
      ) as T;
    },
  };

  /** A span per delivery attempt: the event's name, its outcome and the receiver's status; never its URL or secret. */
  readonly deliveries: DeliveryObserver = {
    attempting: (event) => {
      const span = this.tracer.startSpan(
        `webhook ${event}`,
        { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'POST', 'users_api.webhook.event': event } },
        ROOT_CONTEXT,
      );
      return (result, statusCode) => {
        span.setAttribute('users_api.webhook.outcome', result);
        if (statusCode !== null) span.setAttribute('http.response.status_code', statusCode);
        if (result !== 'delivered') span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      };
    },
  };

  /**
   * A server span per request, named by its method and route pattern (never its URL), continuing the caller's trace
   * (traceparent). Its context is entered for the onRequest hooks that follow and again around each handler: the
   * body is read on the socket's events, which would lose it.
   */
  register(app: FastifyInstance): void {
    const { spans, tracer } = this;
    app.addHook('onRequest', (request, _reply, done) => {
      const route = request.routeOptions.url;
      const parent = propagation.extract(ROOT_CONTEXT, request.headers);
      const span = tracer.startSpan(
        route === undefined ? request.method : `${request.method} ${route}`,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method, ...(route === undefined ? {} : { 'http.route': route }) } },
        parent,
      );
      spans.set(request, span);
      context.with(trace.setSpan(parent, span), done);
    });
    app.addHook('onRoute', (route) => {
      const handler = route.handler;
      route.handler = function (this: FastifyInstance, request, reply) {
        const span = spans.get(request);
        if (span === undefined) return handler.call(this, request, reply);
        return context.with(trace.setSpan(context.active(), span), handler, this, request, reply);
      } as RouteHandlerMethod;
    });
    app.addHook('onResponse', (request, reply, done) => {
      const span = spans.get(request);
      if (span !== undefined) {
        span.setAttribute('http.response.status_code', reply.statusCode);
        if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
      done();
    });
  }

  /** Sends the spans not yet exported, within FLUSH_TIMEOUT_MS: a collector that does not answer cannot hold up the exit. */
  async shutdown(log: Logger): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), FLUSH_TIMEOUT_MS);
    });
    try {
      const late = await Promise.race([this.provider.shutdown().then(() => false), timedOut]);
      if (late) log.warn({ timeoutMs: FLUSH_TIMEOUT_MS }, 'the last spans could not be sent in time');
    } catch (error) {
      log.warn({ err: error }, 'sending the last spans failed');
    } finally {
      clearTimeout(timer);
    }
  }
}
