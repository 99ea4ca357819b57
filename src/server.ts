// Opens the store, listens, and shuts down gracefully: the only place with process side effects.
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { connectDatabase, type Db } from './db/database.js';
import { migrateToLatest } from './db/migrations.js';
import { countActiveApiKeys, createApiKey } from './keys/keys.service.js';
import { describeInstance, InstanceHeartbeat, liveInstances, type LiveInstance } from './instances.js';
import { createLogger } from './logger.js';
import type { Logger } from 'pino';
import { resolveSecrets, type Secrets } from './secrets.js';
import { Telemetry } from './telemetry/telemetry.js';

/** On an empty store, a key so that a newcomer's first request works; printed once, never logged. */
async function createDevelopmentKeyIfNone(db: Db, baseUrl: string): Promise<void> {
  if ((await countActiveApiKeys(db)) > 0) return;
  const key = await createApiKey(db, { name: 'development' });
  process.stdout.write(
    [
      '',
      'No API keys existed, so a development key was created. The secret is shown only this once:',
      `  client_id       ${key.client_id}`,
      `  api_key_id      ${key.api_key_id}`,
      `  api_key_secret  ${key.api_key_secret}`,
      'Try it:',
      `  curl -u '${key.api_key_id}:${key.api_key_secret}' --request POST --url ${baseUrl}/v2/users ` +
        `--header 'accept: application/json' --header 'content-type: application/json'`,
      `Console (sign in with this key): ${baseUrl}/console`,
      `API reference: ${baseUrl}/docs`,
      '',
      '',
    ].join('\n'),
  );
}

/** Instances that cannot read what this one writes (PII_KEYS rolled out with the new key first, too soon). */
async function warnOfInstancesLackingKey(db: Db, self: LiveInstance, logger: Logger): Promise<void> {
  const [piiKeyId] = self.piiKeyIds;
  const lacking = (await liveInstances(db)).filter((i) => i.id !== self.id && !i.piiKeyIds.includes(piiKeyId ?? ''));
  if (lacking.length === 0) return;
  logger.warn(
    { piiKeyId, instances: lacking.map(describeInstance) },
    'running instances lack the PII key this instance encrypts with: they cannot read users written here until restarted with it in PII_KEYS',
  );
}

export async function serve(config: Config): Promise<FastifyInstance> {
  const logger = createLogger(config.logLevel);
  if (config.database.kind === 'postgres') resolveSecrets(config); // fail fast, before connecting
  // Before the store opens: it reports its statements and commits to whichever of metrics and traces is on.
  const telemetry = await Telemetry.start(config, logger);
  const db = await connectDatabase(config.database, telemetry?.db);
  let secrets: Secrets;
  try {
    if (config.migrateOnStart) await migrateToLatest(db);
    secrets = resolveSecrets(config, db);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  if (secrets.userTokenSecretReplaced) {
    logger.warn('user-token.secret was missing and a new one was generated: user tokens and cursors issued before are no longer valid');
  }
  telemetry?.watch(db);
  const app = await buildApp(config, { db, secrets, logger, telemetry });
  const heartbeat = await InstanceHeartbeat.start(db, secrets.piiKeys.map((key) => key.id), logger);
  app.addHook('onClose', async () => {
    await heartbeat.stop().catch((error: unknown) => logger.warn({ err: error }, 'could not remove the instance heartbeat'));
    await db.destroy();
    // Last: the spans of the requests and statements that just ended go out with the rest.
    await telemetry?.stop();
  });
  await warnOfInstancesLackingKey(db, heartbeat.instance, logger);

  // Before listening: a signal that arrives as soon as the port is open still shuts down gracefully.
  let closing = false;
  const shutdown = (signal: string) => {
    // Further signals (an impatient operator, an orchestrator repeating itself) wait for the same deadline.
    if (closing) {
      logger.info({ signal }, 'already shutting down: in-flight requests finish within SHUTDOWN_TIMEOUT_MS');
      return;
    }
    closing = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting with requests unfinished');
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  await app.listen({ port: config.port, host: config.host });
  // Its own port, never the API's: exposing the API does not expose the metrics.
  await telemetry?.listen();
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = ['0.0.0.0', '::'].includes(config.host) ? 'localhost' : config.host;
  try {
    if (config.database.kind === 'sqlite') {
      await createDevelopmentKeyIfNone(db, `http://${host.includes(':') ? `[${host}]` : host}:${port}`);
    } else if ((await countActiveApiKeys(db)) === 0) {
      // A shared production store never gets a key printed to a log: an operator creates one.
      logger.warn('no active API keys: create one with `users-api keys create --name NAME`');
    }
  } catch (error) {
    // A shutdown that began meanwhile closed the database under these queries: let it finish.
    if (!closing) throw error;
  }

  return app;
}
