// Reading the users export (GET /v2/users/export.csv) back, as strictly as RFC 4180 writes it.
import assert from 'node:assert/strict';

/**
 * RFC 4180, strictly: records end in CRLF (the last one too); a field is quoted or holds no quote, CR or LF;
 * quotes inside a quoted field are doubled.
 */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c !== '"') field += c;
      else if (text[i + 1] === '"') field += text[++i];
      else {
        quoted = false;
        assert.ok(i + 1 === text.length || ',\r'.includes(text[i + 1]!), `text after a closing quote at ${i}`);
      }
    } else if (c === '"') {
      assert.equal(field, '', `a quote inside an unquoted field at ${i}`);
      quoted = true;
    } else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\r') {
      assert.equal(text[i + 1], '\n', `a CR that does not end a record at ${i}`);
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      i++;
    } else {
      assert.notEqual(c, '\n', `a bare LF at ${i}`);
      field += c;
    }
  }
  assert.equal(quoted, false, 'an unterminated quoted field');
  assert.deepEqual([record, field], [[], ''], 'the last record does not end in CRLF');
  return records;
}

/** The value a guarded field stands for: one leading ' removed. */
export const unguard = (field: string) => (field.startsWith("'") ? field.slice(1) : field);
