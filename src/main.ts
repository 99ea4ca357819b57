#!/usr/bin/env node
// The users-api command: serve, migrate, keys.
import { Command, CommanderError } from 'commander';
import { ConfigError, ENVIRONMENT_HELP, loadConfig, type Config } from './config.js';
import { connectDatabase, DatabaseUnavailableError, type Db } from './db/database.js';
import { migrateToLatest } from './db/migrations.js';
import { createReadStream, statSync } from 'node:fs';
import { clientExists, createApiKey, KeyError, listApiKeys, revokeApiKey } from './keys/keys.service.js';
import { newPiiKeyEntry, PiiCipher } from './pii/pii.cipher.js';
import { resolveSecrets } from './secrets.js';
import { importUsers, type ImportProgress } from './users/users.import.js';
import { UsersRepository } from './users/users.repository.js';
import { RotationRefusedError, rotatePii } from './pii/pii.rotate.js';
import { serve } from './server.js';

const out = (text: string) => process.stdout.write(`${text}\n`);

/** The environment, parsed on first use (so `--help` works with a broken one), once per command. */
let parsedConfig: Config | undefined;
const config = (): Config => (parsedConfig ??= loadConfig());

async function withDb<T>(run: (db: Db) => Promise<T>): Promise<T> {
  const db = await connectDatabase(config().database);
  try {
    await migrateToLatest(db);
    return await run(db);
  } finally {
    await db.destroy();
  }
}

const program = new Command('users-api')
  .description('Users API service: multi-tenant users and user tokens over HTTP')
  .showHelpAfterError()
  .addHelpText('after', `\n${ENVIRONMENT_HELP}`)
  .exitOverride();

program
  .command('serve', { isDefault: true })
  .description('run the HTTP server (applies pending migrations first unless MIGRATE_ON_START=false)')
  .action(async () => {
    await serve(config());
  });

program
  .command('migrate')
  .description('apply pending database migrations and exit')
  .action(async () => {
    const db = await connectDatabase(config().database);
    try {
      const { results = [] } = await migrateToLatest(db);
      out(results.length ? results.map((r) => `applied ${r.migrationName}`).join('\n') : 'already up to date');
    } finally {
      await db.destroy();
    }
  });

const keys = program.command('keys').description('manage API keys (one client = one tenant)');

keys
  .command('create')
  .description('create an API key; without --client, for a new client. The secret is shown only once.')
  .requiredOption('--name <name>', 'a label for the key (and for the new client)')
  .option('--client <client_id>', 'add the key to this existing client')
  .option('--json', 'print {"client_id","api_key_id","api_key_secret"} as JSON')
  .action(async (options: { name: string; client?: string; json?: boolean }) => {
    const key = await withDb((db) => createApiKey(db, { name: options.name, clientId: options.client }));
    if (options.json) out(JSON.stringify(key));
    else {
      out(`client_id       ${key.client_id}\napi_key_id      ${key.api_key_id}\napi_key_secret  ${key.api_key_secret}`);
      out('Store the secret now: it cannot be shown again.');
    }
  });

keys
  .command('list')
  .description('list API keys (never their secrets)')
  .option('--json', 'print a JSON array')
  .action(async (options: { json?: boolean }) => {
    const rows = await withDb((db) => listApiKeys(db));
    if (options.json) {
      out(JSON.stringify(rows));
      return;
    }
    out(['api_key_id', 'client_id', 'name', 'created_at', 'revoked_at'].join('\t'));
    for (const row of rows) {
      out([row.id, row.client_id, row.name, row.created_at, row.revoked_at ?? '-'].join('\t'));
    }
  });

keys
  .command('revoke')
  .description('revoke an API key; requests with it fail within API_KEY_CACHE_MS (default 5 s)')
  .argument('<api_key_id>')
  .action(async (id: string) => {
    if (!(await withDb((db) => revokeApiKey(db, id)))) throw new KeyError(`No active API key with id ${id}`);
    out(`revoked ${id}`);
  });

const pii = program.command('pii').description('encryption keys of personal data at rest (PII_KEYS)');

pii
  .command('new-key')
  .description('print a new KEY_ID:BASE64 entry; put it first in PII_KEYS (or pii.keys) to make it the encrypting key')
  .option('--id <key_id>', 'the key id (default: k, today\'s date and a random suffix, e.g. k20261127-3fa9c2)')
  .action((options: { id?: string }) => {
    out(newPiiKeyEntry(options.id));
  });

pii
  .command('rotate')
  .description(
    're-encrypt every user\'s personal data under the first key of PII_KEYS; safe while serving: refused while ' +
      'a running instance does not hold that key',
  )
  .option('--batch <n>', 'rows per batch', (v) => Number.parseInt(v, 10), 500)
  .action(async (options: { batch: number }) => {
    const cipher = new PiiCipher(resolveSecrets(config()).piiKeys);
    const total = await withDb((db) => rotatePii(db, cipher, options.batch));
    out(`re-encrypted ${total} users under key ${cipher.primaryKeyId}`);
  });

program
  .command('import')
  .description('bulk-create users from NDJSON: one POST /v2/users body per line (at most BODY_LIMIT bytes), read and validated the same way')
  .requiredOption('--client <client_id>', 'the client (tenant) the users belong to')
  .argument('[file]', 'NDJSON file; standard input when omitted or "-"')
  .action(async (file: string | undefined, options: { client: string }) => {
    const fromStdin = file === undefined || file === '-';
    const total = fromStdin ? undefined : statSync(file).size;
    const stream = fromStdin ? process.stdin : createReadStream(file);
    const started = Date.now();
    const report = (p: ImportProgress, final = false) => {
      const seconds = (Date.now() - started) / 1000;
      const rate = Math.round(p.imported / Math.max(seconds, 0.001));
      const done = total ? Math.min(1, (stream as { bytesRead?: number }).bytesRead! / total) : undefined;
      const bar = done === undefined ? '' : `[${'#'.repeat(Math.round(done * 30)).padEnd(30, '.')}] ${(done * 100).toFixed(0).padStart(3)}% `;
      const line = `${bar}${p.imported} imported, ${p.rejected} rejected, ${rate}/s`;
      if (process.stderr.isTTY) process.stderr.write(`\r${line}${final ? '\n' : ''}`);
      else if (final) process.stderr.write(`${line}\n`);
    };
    const progress = await withDb(async (db) => {
      if (!(await clientExists(db, options.client))) throw new KeyError(`No client with id ${options.client}`);
      const repo = new UsersRepository(db, new PiiCipher(resolveSecrets(config()).piiKeys));
      return importUsers(repo, stream, {
        clientId: options.client,
        bodyLimit: config().bodyLimit,
        onProgress: (p) => report(p),
        onReject: (line, errors) => process.stderr.write(`line ${line}: ${JSON.stringify(errors)}\n`),
      });
    });
    report(progress, true);
    out(JSON.stringify(progress));
    if (progress.rejected > 0) process.exitCode = 1;
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  if (
    error instanceof ConfigError ||
    error instanceof KeyError ||
    error instanceof DatabaseUnavailableError ||
    error instanceof RotationRefusedError
  ) {
    console.error(`users-api: ${error.message}`);
    process.exit(2);
  }
  // Startup failures (port in use, unreadable database) are reported in one line, not a stack trace.
  const code = (error as { code?: string }).code;
  console.error(`users-api: ${(error as Error).message}${code ? ` (${code})` : ''}`);
  process.exit(1);
}
