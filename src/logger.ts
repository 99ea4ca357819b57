// pino with personal data and credentials redacted; pretty output only on a terminal.
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import pino, { type Bindings, type ChildLoggerOptions, type LevelWithSilentOrString, type LogFn, type Logger } from 'pino';

// A request's headers never reach a line: requestForLog leaves them out.
export const REDACTED_PATHS = [
  'res.headers["set-cookie"]',
  '*.ssn',
  '*.email',
  '*.phone_number',
  '*.first_name',
  '*.last_name',
  '*.address',
  '*.birth_date',
  '*.api_key_secret',
  '*.user_token',
];

/**
 * How a request appears in a log line (Fastify's "incoming request" and error logs): its method and the pattern of the
 * route it matched (`/v2/users/:id`), never its URL. Query strings carry e-mail addresses, external ids and cursors,
 * and a path that matched no route is free text a client typed: for those `route` is null.
 */
export function requestForLog(request: Partial<Pick<FastifyRequest, 'method' | 'routeOptions' | 'host' | 'ip' | 'socket'>>) {
  return {
    method: request.method,
    route: request.routeOptions?.url ?? null,
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/**
 * How an error appears in a log line: its type, code, message and stack, and its cause the same way. A driver's error
 * carries more (PostgreSQL's `detail` names the values of a violated key, `where` and `query` the statement): left out.
 */
export function errorForLog(error: unknown): Record<string, unknown> | unknown {
  if (!(error instanceof Error)) return error;
  const { code } = error as { code?: unknown };
  return {
    type: error.constructor.name,
    message: error.message,
    ...(code === undefined ? {} : { code }),
    stack: error.stack,
    ...(error.cause === undefined ? {} : { cause: errorForLog(error.cause) }),
  };
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
    // Fastify's own `req` serializer logs the URL, query string included; this one replaces it.
    serializers: { req: requestForLog, err: errorForLog },
  };
  if (destination) return pino(options, destination);
  if (process.stdout.isTTY) return pino({ ...options, transport: { target: 'pino-pretty' } });
  return pino(options);
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/**
 * A request's logger that makes its pino child (bound to the request id) on the first call at an enabled
 * level; until then it follows the parent's level (a pino child would keep the level it was made with).
 * Fastify makes one per request; a pino child with redaction costs about a quarter of a health check's
 * CPU time, and at LOG_LEVEL=warn nearly no request logs anything.
 */
class RequestLogger implements FastifyBaseLogger {
  declare fatal: LogFn;
  declare error: LogFn;
  declare warn: LogFn;
  declare info: LogFn;
  declare debug: LogFn;
  declare trace: LogFn;
  private made: Logger | undefined;

  static {
    for (const level of LEVELS) {
      this.prototype[level] = function (this: RequestLogger, ...args: Parameters<LogFn>) {
        if ((this.made ?? this.parent).isLevelEnabled(level)) this.logger[level](...args);
      } as LogFn;
    }
  }

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
  ) {}

  private get logger(): Logger {
    return (this.made ??= this.parent.child(this.bindings));
  }

  get level(): LevelWithSilentOrString {
    return (this.made ?? this.parent).level;
  }

  set level(level: LevelWithSilentOrString) {
    this.logger.level = level;
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options);
  }
}

/** Fastify's childLoggerFactory: request loggers that cost nothing until they log. */
export function lazyRequestLogger(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  // A route's own level or serializers, or a logger that is not pino: Fastify's way.
  if (Object.keys(options).length > 0 || !('isLevelEnabled' in parent)) return parent.child(bindings, options);
  return new RequestLogger(parent as Logger, bindings);
}
