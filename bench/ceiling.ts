// The ceiling: a bare node:http server answering every request with one canned User JSON.
// No routing, no auth, no storage, no validation: the most any Node.js server can do per core here.
// Usage: node --import tsx bench/ceiling.ts <body.json>   (PORT, HOST from the environment; prints "listening <port>")
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const file = process.argv[2];
if (!file) {
  console.error('usage: ceiling.ts <body.json>');
  process.exit(2);
}
const body = readFileSync(file);
const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(body.length) };

const server = createServer((request, response) => {
  // Drain any request body (POST/PATCH) before answering, as a real server must.
  request.resume();
  request.on('end', () => {
    response.writeHead(200, headers);
    response.end(body);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : ''}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
