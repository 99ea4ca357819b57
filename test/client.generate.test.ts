// The typed client matches the server: its checked-in document and types are what the current routes generate.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { clientTypes, DOCUMENT_FILE, servedDocument, TYPES_FILE } from '../scripts/client-generate.js';

const REGENERATE = 'run `npm run client:generate` and commit clients/typescript';

describe('the typed client (clients/typescript)', () => {
  it('holds the OpenAPI document and the types of the routes as they are', async () => {
    const document = await servedDocument();
    assert.ok(JSON.parse(document).paths['/v2/users'], 'the served document has the API');
    // Equal texts, compared as lines: a failure names the first lines that differ.
    assert.deepEqual((await readFile(DOCUMENT_FILE, 'utf8')).split('\n'), document.split('\n'), `openapi.json is out of date: ${REGENERATE}`);
    assert.deepEqual((await readFile(TYPES_FILE, 'utf8')).split('\n'), (await clientTypes(document)).split('\n'), `src/schema.ts is out of date: ${REGENERATE}`);
  });
});
