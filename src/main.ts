#!/usr/bin/env node
// The users-api command: serve, migrate, keys, pii, import, export, backup, restore, webhooks.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { once } from 'node:events';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { ENVIRONMENT_HELP, loadConfig, type Config } from './config.js';
import type { Db } from './db/database.js';
import { ApiError, OperatorError } from './errors.js';
import type { PiiCipher } from './pii/pii.cipher.js';
import type { UsersRepository } from './users/users.repository.js';
import type { ImportProgress } from './users/users.import.js';
import type { WebhooksService } from './webhooks/webhooks.service.js';

// Each command imports what it runs when it runs: `--help`, `keys` and `pii new-key` load neither the HTTP server nor
// the schemas, so they start in a fraction of the time `serve` takes.

const out = (text: string) => process.stdout.write(`${text}\n`);

/** The environment, parsed on first use (so `--help` works with a broken one), once per command. */
let parsedConfig: Config | undefined;
const config = (): Config => (parsedConfig ??= loadConfig());

async function withDb<T>(run: (db: Db) => Promise<T>): Promise<T> {
  const { connectDatabase } = await import('./db/database.js');
  const { migrateToLatest } = await import('./db/migrations.js');
  const db = await connectDatabase(config().database);
  try {
    await migrateToLatest(db);
    return await run(db);
  } finally {
    await db.destroy();
  }
}

/** The cipher of personal data over `db`'s store, with the keys the configuration or the store's files give. */
async function cipherOf(db: Db): Promise<PiiCipher> {
  const { PiiCipher } = await import('./pii/pii.cipher.js');
  const { resolveSecrets } = await import('./secrets.js');
  return new PiiCipher(resolveSecrets(config(), db).piiKeys);
}

/** The users of `clientId`, refused in one line when there is no such client. */
async function usersOf(db: Db, clientId: string): Promise<UsersRepository> {
  const { clientExists, KeyError } = await import('./keys/keys.service.js');
  if (!(await clientExists(db, clientId))) throw new KeyError(`No client with id ${clientId}`);
  const { UsersRepository } = await import('./users/users.repository.js');
  return new UsersRepository(db, await cipherOf(db));
}

/** A mistyped command line: reported in one line, exit code 1 as for commander's own usage errors. */
class UsageError extends Error {}

/** Names the unknown word and the commands there are, instead of commander's help page or a complaint about serve. */
function rejectUnknownCommand(group: Command, word: string): never {
  const path = (command: Command): string[] => (command.parent ? [...path(command.parent), command.name()] : []);
  const prefix = path(group).map((name) => `${name} `).join('');
  const commands = group.commands.map((command) => `${prefix}${command.name()}`).join(', ');
  throw new UsageError(`unknown command '${prefix}${word}'. Commands: ${commands}. See users-api ${prefix}--help.`);
}

/** For numeric options: commander names the option and the value, where parseInt's NaN reached the database. */
function positiveInteger(value: string): number {
  if (!/^[1-9]\d{0,8}$/.test(value)) throw new InvalidArgumentError('Expected a positive integer.');
  return Number(value);
}

// Read at run time: dist/main.js and src/main.ts (under tsx) are both one directory below package.json.
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('users-api')
  .description('Users API service: multi-tenant users and user tokens over HTTP')
  .version(version)
  .showHelpAfterError()
  .addHelpText('after', `\n${ENVIRONMENT_HELP}`)
  .exitOverride()
  // serve is the default command, so commander hands it every word that names no command.
  .hook('preSubcommand', (root, command) => {
    const [word] = root.args;
    if (command.name() === 'serve' && word !== undefined && word !== 'serve' && !word.startsWith('-')) rejectUnknownCommand(root, word);
  });

program
  .command('serve', { isDefault: true })
  .description('run the HTTP server (applies pending migrations first unless MIGRATE_ON_START=false)')
  .action(async () => {
    const { serve } = await import('./server.js');
    await serve(config());
  });

program
  .command('migrate')
  .description('apply pending database migrations and exit')
  .action(async () => {
    const { connectDatabase } = await import('./db/database.js');
    const { migrateToLatest } = await import('./db/migrations.js');
    const db = await connectDatabase(config().database);
    try {
      const { results = [] } = await migrateToLatest(db);
      out(results.length ? results.map((r) => `applied ${r.migrationName}`).join('\n') : 'already up to date');
    } finally {
      await db.destroy();
    }
  });

const keys = program
  .command('keys')
  .description('manage API keys (one client = one tenant)')
  .on('command:*', ([word]: string[]) => rejectUnknownCommand(keys, word ?? ''));

keys
  .command('create')
  .description('create an API key; without --client, for a new client. The secret is shown only once.')
  .requiredOption('--name <name>', 'a label for the key (and for the new client)')
  .option('--client <client_id>', 'add the key to this existing client')
  .option('--json', 'print {"client_id","api_key_id","api_key_secret"} as JSON')
  .action(async (options: { name: string; client?: string; json?: boolean }) => {
    const { createApiKey } = await import('./keys/keys.service.js');
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
    const { listApiKeys } = await import('./keys/keys.service.js');
    const rows = await withDb((db) => listApiKeys(db));
    if (options.json) {
      out(JSON.stringify(rows));
      return;
    }
    const columns = ['api_key_id', 'client_id', 'name', 'created_at', 'revoked_at'] as const;
    out(columns.join('\t'));
    for (const row of rows) out(columns.map((column) => row[column] ?? '-').join('\t'));
  });

keys
  .command('revoke')
  .description('revoke an API key; requests with it fail within API_KEY_CACHE_MS (default 5 s)')
  .argument('<api_key_id>')
  .action(async (id: string) => {
    const { KeyError, revokeApiKey } = await import('./keys/keys.service.js');
    if (!(await withDb((db) => revokeApiKey(db, id)))) throw new KeyError(`No active API key with id ${id}`);
    out(`revoked ${id}`);
  });

const pii = program
  .command('pii')
  .description('encryption keys of personal data at rest (PII_KEYS)')
  .on('command:*', ([word]: string[]) => rejectUnknownCommand(pii, word ?? ''));

pii
  .command('new-key')
  .description('print a new KEY_ID:BASE64 entry; put it first in PII_KEYS (or pii.keys) to make it the encrypting key')
  .option('--id <key_id>', 'the key id (default: k, today\'s date and a random suffix, e.g. k20261127-3fa9c2)')
  .action(async (options: { id?: string }) => {
    const { newPiiKeyEntry } = await import('./pii/pii.cipher.js');
    out(newPiiKeyEntry(options.id));
  });

pii
  .command('rotate')
  .description(
    're-encrypt every user\'s personal data under the first key of PII_KEYS; safe while serving: refused while ' +
      'a running instance does not hold that key',
  )
  .option('--batch <n>', 'rows per batch', positiveInteger, 500)
  .action(async (options: { batch: number }) => {
    const { rotatePii } = await import('./pii/pii.rotate.js');
    const rotated = await withDb(async (db) => {
      const cipher = await cipherOf(db);
      return { total: await rotatePii(db, cipher, options.batch), keyId: cipher.primaryKeyId };
    });
    out(`re-encrypted ${rotated.total} users under key ${rotated.keyId}`);
  });

program
  .command('import')
  .description(
    'bulk-create users from NDJSON: one POST /v2/users body per line (at most BODY_LIMIT bytes), read and validated the ' +
      'same way; a line of users-api export --format ndjson restores its user, id and created_at included',
  )
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
    const { importUsers } = await import('./users/users.import.js');
    const { dialectOf } = await import('./db/database.js');
    const { sql } = await import('kysely');
    const progress = await withDb(async (db) => {
      const result = await importUsers(await usersOf(db, options.client), stream, {
        clientId: options.client,
        bodyLimit: config().bodyLimit,
        onProgress: (p) => report(p),
        onReject: (line, errors) => process.stderr.write(`line ${line}: ${JSON.stringify(errors)}\n`),
      });
      // PostgreSQL plans lists and exports from table statistics, which autovacuum refreshes only later: until
      // then a keyset page of a freshly imported client sorts all its rows (measured: export of 100,000 users
      // 1.6 s before, 0.29 s after). SQLite's planner needs no statistics for these indexed walks.
      if (result.imported > 0 && dialectOf(db) === 'postgres') await sql`analyze users`.execute(db);
      return result;
    });
    report(progress, true);
    out(JSON.stringify(progress));
    if (progress.rejected > 0) process.exitCode = 1;
  });

/**
 * Writes `chunks` to `file`, or to standard output without one (or "-"), each chunk once the last is taken. A file
 * is written under a temporary name beside it, created owner-only (0600, whatever the umask), and renamed over
 * `file` when complete: it is never readable by others, not even when `file` existed with a wider mode, and a failed
 * export leaves no partial file behind.
 */
async function writeOut(chunks: AsyncIterable<string>, file: string | undefined): Promise<void> {
  if (file === undefined || file === '-') {
    // A reader that goes away (EPIPE) fails the command rather than the process.
    let broken: Error | undefined;
    const onError = (error: Error) => (broken = error);
    process.stdout.on('error', onError);
    try {
      for await (const chunk of chunks) {
        if (broken) throw broken;
        if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
      }
    } finally {
      process.stdout.off('error', onError);
    }
    return;
  }
  const partial = `${file}.${process.pid}.partial`;
  const handle = await open(partial, 'wx', 0o600);
  try {
    for await (const chunk of chunks) await handle.write(chunk);
    await handle.sync();
    await handle.close();
    await rename(partial, file);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw error;
  }
}

program
  .command('export')
  .description(
    "write a client's users, oldest first: csv as GET /v2/users/export.csv (nothing personal), or ndjson with every " +
      'field decrypted, SSN, birth date and address included, one user per line as users-api import reads it back',
  )
  .requiredOption('--client <client_id>', 'the client (tenant) whose users to write')
  .addOption(new Option('--format <format>', 'csv or ndjson').choices(['csv', 'ndjson']).makeOptionMandatory())
  .option(
    '--output <file>',
    'write to FILE instead of standard output. The file is created owner-only (mode 0600), replacing FILE only once ' +
      'complete: the ndjson holds personal data in clear',
  )
  .addHelpText(
    'after',
    '\nThe ndjson holds SSNs, birth dates and addresses in clear: prefer --output, which makes the file owner-only\n' +
      '(0600). Standard output redirected by a shell (> file) gets the umask\'s mode instead, often 0644.',
  )
  .action(async (options: { client: string; format: 'csv' | 'ndjson'; output?: string }) => {
    const { usersCsv } = await import('./users/users.export.js');
    const { usersNdjson } = await import('./users/users.ndjson.js');
    await withDb(async (db) => {
      const repo = await usersOf(db, options.client);
      const exported = (options.format === 'csv' ? usersCsv : usersNdjson)(repo, options.client, { order: 'asc' });
      await writeOut(exported, options.output);
    });
  });

program
  .command('backup')
  .description(
    'copy the embedded SQLite store, while servers keep serving from it, with the secret files beside it (pii.keys, ' +
      'user-token.secret) into the new directory DIR, owner-only; on PostgreSQL use pg_dump',
  )
  .argument('<dir>', 'the backup directory to create; it must not exist')
  .addHelpText(
    'after',
    '\nDIR gets users.db (a consistent snapshot: one read transaction, VACUUM INTO) and the secret files that exist\n' +
      'beside DATABASE_URL, all mode 0600 in a 0700 directory. It is written under a temporary name and renamed when\n' +
      'complete and verified, so DIR never holds half a backup. Secrets given in the environment (PII_KEYS,\n' +
      'USER_TOKEN_SECRET) are not files: keep their values with the backup. Restore it with users-api restore DIR.\n' +
      'On PostgreSQL: pg_dump --format=custom --file users.dump "$DATABASE_URL", and keep PII_KEYS and\n' +
      'USER_TOKEN_SECRET with it.',
  )
  .action(async (dir: string) => {
    const { backupStore } = await import('./backup.js');
    const report = await backupStore(config(), dir);
    out(`backed up ${report.store} into ${dir}: ${report.files.join(', ')}`);
    for (const name of report.fromEnvironment) {
      out(`${name} is set in the environment, so no backup holds it: keep its value with this backup`);
    }
  });

program
  .command('restore')
  .description(
    'put a backup made by users-api backup in place of the store DATABASE_URL names, with its secret files; ' +
      'verified first; an existing store is replaced only with --force, and never while a process has it open',
  )
  .argument('<dir>', 'a backup directory made by users-api backup')
  .option('--force', 'replace the store (and its secret files) that is there; stop every server using it first')
  .addHelpText(
    'after',
    '\nThe backup is copied beside DATABASE_URL under temporary names (0600), verified there (PRAGMA integrity_check,\n' +
      'the migrations table, migrations this build knows, and the PII keys decrypt its personal data: PII_KEYS when\n' +
      'set, else its pii.keys), then renamed into place. Without --force, a store or secret file already there is\n' +
      'left as it is and the restore is refused (exit code 2). Servers apply any newer migrations when they start.\n' +
      'On PostgreSQL: pg_restore --clean --if-exists --no-owner --dbname "$DATABASE_URL" users.dump.',
  )
  .action(async (dir: string, options: { force?: boolean }) => {
    const { restoreStore } = await import('./backup.js');
    const report = await restoreStore(config(), dir, { force: options.force });
    out(`restored ${dir} into ${report.store}${report.replaced ? ', replacing the store there' : ''}: ${report.files.join(', ')}`);
  });

const webhooks = program.command('webhooks').description('webhook subscriptions and their deliveries, per client');

/** The webhooks service over the store, as the API has it. */
async function withWebhooks<T>(run: (service: WebhooksService) => Promise<T>): Promise<T> {
  const { PiiCipher } = await import('./pii/pii.cipher.js');
  const { resolveSecrets } = await import('./secrets.js');
  const { CursorCodec } = await import('./paging/cursor.js');
  const { WebhooksRepository } = await import('./webhooks/webhooks.repository.js');
  const { WebhooksService } = await import('./webhooks/webhooks.service.js');
  return withDb(async (db) => {
    const { piiKeys, userTokenSecret } = resolveSecrets(config(), db);
    const cipher = new PiiCipher(piiKeys);
    return run(new WebhooksService(new WebhooksRepository(db, cipher), cipher, CursorCodec.forSecret(userTokenSecret), config().webhooks.allowPrivate));
  });
}

webhooks
  .command('list')
  .description("a client's subscriptions, as JSON lines (never their secrets)")
  .requiredOption('--client <client_id>', 'the client (tenant)')
  .action(async (options: { client: string }) => {
    for (const webhook of await withWebhooks((service) => service.all(options.client))) out(JSON.stringify(webhook));
  });

webhooks
  .command('deliveries')
  .description("a subscription's latest deliveries, newest first, as JSON lines: status, attempts, last response")
  .requiredOption('--client <client_id>', 'the client (tenant)')
  .option('--status <status>', 'only pending, delivered or failed ones')
  .option('--limit <n>', 'how many (default 50)', positiveInteger, 50)
  .argument('<webhook_id>')
  .action(async (webhookId: string, options: { client: string; status?: string; limit: number }) => {
    if (options.status !== undefined && !['pending', 'delivered', 'failed'].includes(options.status)) {
      throw new UsageError(`--status must be pending, delivered or failed, got "${options.status}"`);
    }
    const rows = await withWebhooks((service) => service.latestDeliveries(options.client, webhookId, options.limit, options.status));
    for (const delivery of rows) out(JSON.stringify(delivery));
  });

webhooks
  .command('retry')
  .description('make a failed (or waiting) delivery due now, with a fresh budget of attempts')
  .requiredOption('--client <client_id>', 'the client (tenant)')
  .argument('<webhook_id>')
  .argument('<delivery_id>')
  .action(async (webhookId: string, deliveryId: string, options: { client: string }) => {
    const delivery = await withWebhooks((service) => service.retry(options.client, webhookId, deliveryId));
    out(`delivery ${delivery.id} is due again`);
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  if (error instanceof UsageError || error instanceof ApiError) {
    console.error(`users-api: ${error.message}`);
    process.exit(1);
  }
  // ConfigError, KeyError, DatabaseUnavailableError, RotationRefusedError, BackupError.
  if (error instanceof OperatorError) {
    console.error(`users-api: ${error.message}`);
    process.exit(2);
  }
  // Startup failures (port in use, unreadable database) are reported in one line, not a stack trace.
  const code = (error as { code?: string }).code;
  console.error(`users-api: ${(error as Error).message}${code ? ` (${code})` : ''}`);
  process.exit(1);
}
