import { readFileSync } from 'node:fs';
import { loadConfig } from '../src/config.js';
import { connectDatabase } from '../src/db/database.js';
import { ApiKeyVerifier } from '../src/keys/keys.service.js';
import { PiiCipher } from '../src/pii/pii.cipher.js';
import { resolveSecrets } from '../src/secrets.js';
import { UsersRepository } from '../src/users/users.repository.js';
import { userRowToUser } from '../src/users/users.service.js';
const config = loadConfig();
const db = await connectDatabase(config.database);
const users = new UsersRepository(db, new PiiCipher(resolveSecrets(config).piiKeys));
const keys = new ApiKeyVerifier(db, config.apiKeyCacheMs);
const [k, s] = Buffer.from(readFileSync('/tmp/exp/auth', 'utf8').split(' ')[1]!, 'base64').toString().split(':') as [string, string];
const clientId = (await keys.verify(k, s))!;
const ids = readFileSync('/tmp/exp/get.tsv', 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t')[1]!.slice(10));
async function time(name: string, f: (i: number) => unknown) {
  for (let i = 0; i < 20000; i++) await f(i);
  const t = process.hrtime.bigint(); for (let i = 0; i < 50000; i++) await f(i);
  console.log(name, (Number(process.hrtime.bigint() - t) / 50000 / 1000).toFixed(2), 'µs');
}
const row = (await users.findUserById(clientId, ids[0]!))!;
for (let r = 0; r < 2; r++) {
  await time('verify', () => keys.verify(k, s));
  await time('findUserById', (i) => users.findUserById(clientId, ids[i % ids.length]!));
  await time('userRowToUser+stringify', () => JSON.stringify(userRowToUser(row)));
  await time('await noop', () => undefined);
}
