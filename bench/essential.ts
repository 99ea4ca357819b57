// The essential work of GET /v2/users/{id} behind a bare node:http server: the service's own API key
// check, SQLite lookup, PII decryption and User JSON, with no framework, routing, validation, rate limit,
// logging or hooks. Between the ceiling (bench/ceiling.ts) and the service, it shows how much of a GET's
// time the work itself takes and how much the HTTP plumbing around it.
// Usage: node --import tsx bench/essential.ts   (the service's environment: DATABASE_URL, PII_KEYS, ...;
// PORT, HOST; prints "listening <port>")
import { createServer } from 'node:http';
import { loadConfig } from '../src/config.js';
import { connectDatabase } from '../src/db/database.js';
import { ApiKeyVerifier } from '../src/keys/keys.service.js';
import { PiiCipher } from '../src/pii/pii.cipher.js';
import { resolveSecrets } from '../src/secrets.js';
import { canonicalUserId } from '../src/users/users.ids.js';
import { UsersRepository } from '../src/users/users.repository.js';
import { etagOf, userRowToUser } from '../src/users/users.service.js';

const config = loadConfig();
const db = await connectDatabase(config.database);
const users = new UsersRepository(db, new PiiCipher(resolveSecrets(config).piiKeys));
const keys = new ApiKeyVerifier(db, config.apiKeyCacheMs);
const PREFIX = '/v2/users/';

function answer(response: import('node:http').ServerResponse, status: number, body: string, etag?: string): void {
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  };
  if (etag !== undefined) headers.etag = etag;
  response.writeHead(status, headers).end(body);
}

const server = createServer((request, response) => {
  void (async () => {
    const [scheme, encoded] = (request.headers.authorization ?? '').split(' ');
    const decoded = scheme === 'Basic' && encoded ? Buffer.from(encoded, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    const clientId = colon > 0 ? await keys.verify(decoded.slice(0, colon), decoded.slice(colon + 1)) : undefined;
    if (clientId === undefined) return answer(response, 401, '{"detail":"Invalid username/password."}');
    const id = request.url?.startsWith(PREFIX) ? canonicalUserId(request.url.slice(PREFIX.length)) : undefined;
    const row = id === undefined ? undefined : await users.findUserById(clientId, id);
    if (row === undefined) return answer(response, 404, '{"detail":"Not found."}');
    answer(response, 200, JSON.stringify(userRowToUser(row)), etagOf(row.version));
  })().catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    if (response.headersSent) response.destroy();
    else answer(response, 500, '{"detail":"A server error occurred."}');
  });
});
server.keepAliveTimeout = 65_000;
server.listen(config.port, config.host, () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : ''}\n`);
});
const stop = () => server.close(() => void db.destroy().finally(() => process.exit(0)));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
