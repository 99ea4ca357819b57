// Backup and restore of the embedded SQLite store together with the secret files kept beside it (see secrets.ts).
import { createReadStream, existsSync, statSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Config } from './config.js';
import type { Database } from './db/database.js';
import { OperatorError } from './errors.js';
import { MIGRATION_NAMES } from './db/migrations.js';
import { parsePiiKeys, PiiCipher } from './pii/pii.cipher.js';
import { SECRET_FILES } from './secrets.js';
import { UsersRepository } from './users/users.repository.js';

/** A backup or restore refused before anything was changed: one line for the operator, exit code 2. */
export class BackupError extends OperatorError {}

/** The database's name inside a backup directory; the secret files keep the names they have beside a store. */
export const BACKUP_DATABASE = 'users.db';

const SECRET_NAMES: readonly string[] = Object.values(SECRET_FILES);

/** Where the embedded store is, or a refusal that says what to use instead. */
function embeddedStorePath(config: Config, command: 'backup' | 'restore'): string {
  const { database } = config;
  if (database.kind === 'postgres') {
    throw new BackupError(
      `${command} is for the embedded SQLite store, and DATABASE_URL is PostgreSQL: use ${command === 'backup' ? 'pg_dump --format=custom' : 'pg_restore'} ` +
        '(see the README, "Backup and restore"), and keep PII_KEYS and USER_TOKEN_SECRET with the dump: its personal data cannot be read without PII_KEYS',
    );
  }
  if (database.path === ':memory:') throw new BackupError(`${command} needs a store on disk, and DATABASE_URL is :memory:`);
  return resolve(database.path);
}

/**
 * Copies `from` to `to`, a new file created owner-only (0600, whatever the umask or `from`'s mode; copyFile would give
 * it `from`'s mode), and fsyncs it.
 */
async function copyOwnerOnly(from: string, to: string): Promise<void> {
  const handle = await open(to, 'wx', 0o600);
  try {
    for await (const chunk of createReadStream(from)) await handle.write(chunk as Buffer);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fails when the store open in `sqlite` is damaged, or not one this build can serve. */
function assertServable(sqlite: SQLite.Database, what: string): void {
  const problems = (sqlite.pragma('integrity_check') as Array<{ integrity_check: string }>).map((row) => row.integrity_check);
  // One line: a row of integrity_check may itself hold several ("*** in database main ***\nTree 34 page 34: ...").
  const summary = problems.slice(0, 3).join('; ').replace(/\s*\n\s*/g, '; ');
  if (problems.join() !== 'ok') throw new BackupError(`${what} is damaged (integrity_check: ${summary})`);
  const table = sqlite.prepare("select 1 from sqlite_master where type = 'table' and name = 'kysely_migration'").get();
  if (!table) throw new BackupError(`${what} is not a users-api store: it has no migrations table`);
  const applied = sqlite.prepare('select name from kysely_migration order by name').pluck().all() as string[];
  const unknown = applied.filter((name) => !MIGRATION_NAMES.includes(name));
  if (unknown.length > 0) throw new BackupError(`${what} was made by a newer users-api (migrations ${unknown.join(', ')}): upgrade first`);
}

/**
 * Checks that the store at `path` is whole, migrated by this or an older build, and that `piiKeys` (the PII_KEYS text
 * it will be served with) reads its personal data: one user's sealed fields are decrypted, so a key file that does not
 * belong to this store is caught here rather than by the first request. Read-only: `path` is not changed.
 */
async function verifyStore(path: string, what: string, piiKeys: { text: string; source: string } | undefined): Promise<void> {
  const sqlite = new SQLite(path, { readonly: true, fileMustExist: true });
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    let sealed: { client_id: string; id: string } | undefined;
    try {
      assertServable(sqlite, what);
      sealed = sqlite.prepare('select client_id, id from users where pii is not null limit 1').get() as typeof sealed;
    } catch (error) {
      if (error instanceof BackupError) throw error;
      throw new BackupError(`${what} cannot be read as a SQLite store: ${(error as Error).message}`);
    }
    if (sealed === undefined) return;
    if (piiKeys === undefined) {
      throw new BackupError(`${what} holds personal data encrypted under PII keys, but there is no ${SECRET_FILES.piiKeys} with it and PII_KEYS is not set`);
    }
    try {
      const repository = new UsersRepository(db, new PiiCipher(parsePiiKeys(piiKeys.text, piiKeys.source)));
      await repository.findUserById(sealed.client_id, sealed.id);
    } catch (error) {
      throw new BackupError(`the PII keys of ${piiKeys.source} cannot read the personal data of ${what}: ${(error as Error).message}`);
    }
  } finally {
    await db.destroy();
  }
}

/** The PII keys a store beside `secretsDir` is served with: PII_KEYS when set (it wins over the file), else the file. */
async function piiKeysFor(config: Config, secretsDir: string): Promise<{ text: string; source: string } | undefined> {
  if (config.piiKeys) return { text: config.piiKeys, source: 'PII_KEYS' };
  const file = join(secretsDir, SECRET_FILES.piiKeys);
  return existsSync(file) ? { text: (await readFile(file, 'utf8')).trim(), source: file } : undefined;
}

export interface BackupReport {
  store: string;
  files: string[];
  /** Secrets the store is served with from the environment, which no backup holds: the operator must keep them. */
  fromEnvironment: string[];
}

const secretsFromEnvironment = (config: Config) =>
  [config.piiKeys && 'PII_KEYS', config.userTokenSecret && 'USER_TOKEN_SECRET'].filter((name): name is string => Boolean(name));

/**
 * Writes a consistent copy of the embedded store, taken while servers keep writing to it, into the new directory
 * `target` (0700, as are the parents it creates): the database as users.db and the secret files found beside the
 * store, all 0600. Everything is written under a temporary name beside `target`, verified, fsynced and renamed into
 * place in one step, so `target` never holds half a backup.
 *
 * The copy is VACUUM INTO from a read-only connection: one read transaction, so one snapshot, which in WAL mode never
 * holds up the servers' writes. SQLite's online backup API (better-sqlite3's db.backup()) copies pages in steps and
 * starts over whenever another process writes between two steps: under a steady stream of creates it may never end.
 */
export async function backupStore(config: Config, target: string): Promise<BackupReport> {
  const store = embeddedStorePath(config, 'backup');
  if (!existsSync(store) || statSync(store).size === 0) throw new BackupError(`there is no store at ${store} to back up`);
  target = resolve(target);
  if (existsSync(target)) throw new BackupError(`${target} exists: a backup never replaces another, give it a new name`);
  const partial = join(dirname(target), `.${basename(target)}.${process.pid}.partial`);
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  await mkdir(partial, { mode: 0o700 });
  try {
    const database = join(partial, BACKUP_DATABASE);
    // Created empty and owner-only first: VACUUM INTO writes into an empty file and keeps its mode.
    await (await open(database, 'wx', 0o600)).close();
    const source = new SQLite(store, { readonly: true, fileMustExist: true });
    try {
      assertServable(source, store);
      source.prepare('vacuum into ?').run(database);
    } finally {
      source.close();
    }
    // The copy is in rollback-journal mode (a server switches it to WAL when it opens it), so reading it read-only
    // leaves no -wal and -shm files beside it. SQLite does not fsync what VACUUM INTO wrote.
    await fsync(database);
    const files = [BACKUP_DATABASE];
    for (const name of SECRET_NAMES) {
      if (!existsSync(join(dirname(store), name))) continue;
      await copyOwnerOnly(join(dirname(store), name), join(partial, name));
      files.push(name);
    }
    await verifyStore(database, `the backup of ${store}`, await piiKeysFor(config, partial));
    await fsync(partial);
    await rename(partial, target);
    await fsync(dirname(target));
    return { store, files, fromEnvironment: secretsFromEnvironment(config) };
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
}

/** Fails when another process (a server, a command) has the store at `path` open. */
function assertNotInUse(path: string): void {
  const sqlite = new SQLite(path, { fileMustExist: true });
  try {
    sqlite.pragma('busy_timeout = 0');
    // An exclusive lock on a WAL database is granted only while no other connection has it open, idle ones included.
    sqlite.pragma('locking_mode = EXCLUSIVE');
    sqlite.exec('begin exclusive; commit');
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
      throw new BackupError(`${path} is in use (a running server or command has it open): stop it, then restore`);
    }
    throw new BackupError(`${path} cannot be opened to replace it: ${(error as Error).message}`);
  } finally {
    // The last connection to close checkpoints the WAL into the old file and removes it.
    sqlite.close();
  }
}

/**
 * Removes the -wal and -shm files beside a SQLite file: the old store's, or the empty ones a read-only look at a
 * WAL-mode copy leaves (a backup not made by backupStore).
 */
async function removeSidecars(path: string): Promise<void> {
  for (const suffix of ['-wal', '-shm']) await rm(`${path}${suffix}`, { force: true });
}

export interface RestoreReport {
  store: string;
  files: string[];
  replaced: boolean;
}

/**
 * Puts the backup directory `source` in place of the store DATABASE_URL names, with its secret files. Refused, and
 * nothing changed, when the backup does not verify (integrity, migrations, PII keys that read it), and when a store
 * or its secret files are there already, unless `force`; even then while a process has that store open. The files are
 * copied under temporary names beside the store, verified there, then renamed into place: secrets first, database
 * last. Interrupted between those renames, the same restore run again completes it.
 */
export async function restoreStore(config: Config, source: string, { force = false } = {}): Promise<RestoreReport> {
  const store = embeddedStorePath(config, 'restore');
  source = resolve(source);
  const backupDatabase = join(source, BACKUP_DATABASE);
  if (!existsSync(backupDatabase)) throw new BackupError(`${source} is not a backup made by users-api backup: it has no ${BACKUP_DATABASE}`);
  const dir = dirname(store);
  const secrets = SECRET_NAMES.filter((name) => existsSync(join(source, name)));
  const present = [store, `${store}-wal`, ...SECRET_NAMES.map((name) => join(dir, name))].filter((path) => existsSync(path));
  if (present.length > 0 && !force) {
    throw new BackupError(`a store is there already (${present.join(', ')}): restore replaces it only with --force, once no server uses it`);
  }

  if (existsSync(store)) assertNotInUse(store);

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temporary = (name: string) => join(dir, `.${name}.restore-${process.pid}.partial`);
  const copies = [...secrets, BACKUP_DATABASE].map((name) => ({
    from: join(source, name),
    partial: temporary(name),
    to: name === BACKUP_DATABASE ? store : join(dir, name),
  }));
  try {
    for (const copy of copies) await copyOwnerOnly(copy.from, copy.partial);
    // What is put in place is verified, after the copy: a copy that went wrong is caught too.
    await verifyStore(temporary(BACKUP_DATABASE), `the backup ${source}`, await piiKeysFor(config, source));
    await removeSidecars(temporary(BACKUP_DATABASE));
    // Again, now: a server started during the copy would keep writing to the replaced file.
    if (existsSync(store)) assertNotInUse(store);
    // The old store's WAL and index must not be read with the new database: they describe another file.
    await removeSidecars(store);
    for (const name of SECRET_NAMES.filter((name) => !secrets.includes(name))) await rm(join(dir, name), { force: true });
    // Secrets first, the database last (copies ends with it).
    for (const copy of copies) await rename(copy.partial, copy.to);
    await fsync(dir);
  } catch (error) {
    for (const copy of copies) await rm(copy.partial, { force: true });
    await removeSidecars(temporary(BACKUP_DATABASE));
    throw error;
  }
  return { store, files: [basename(store), ...secrets], replaced: present.length > 0 };
}
