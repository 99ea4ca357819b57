// Request validation from the route schemas (Ajv, all errors at once), reported in DRF's field-error shape.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import { addFieldError, errors, type FieldErrors } from '../errors.js';
import { DeferredCompiles } from './lazy-schemas.js';

/** Python's name for the type of a JSON value, as DRF reports it. */
export function pythonTypeName(value: unknown): string {
  if (value === null) return 'NoneType';
  if (Array.isArray(value)) return 'list';
  switch (typeof value) {
    case 'string':
      return 'str';
    case 'boolean':
      return 'bool';
    case 'number':
      return Number.isInteger(value) ? 'int' : 'float';
    default:
      return 'dict';
  }
}

/** Deepest nesting of arrays and objects accepted in a JSON body. */
export const MAX_JSON_DEPTH = 32;

/**
 * Every string in a JSON value, object keys included, must be NUL-free, well-formed Unicode, and
 * nesting is bounded. Problems inside an `opaque` top-level field (free-form JSON) are reported on that field.
 */
export function findTextProblems(
  value: unknown,
  opaque: ReadonlySet<string> = new Set(),
  path: string[] = [],
  found: FieldErrors = {},
  depth = 0,
): FieldErrors {
  const at = path.length ? path : ['non_field_errors'];
  if (depth > MAX_JSON_DEPTH) {
    addFieldError(found, at, `Ensure this value is nested no more than ${MAX_JSON_DEPTH} levels deep.`);
    return found;
  }
  if (typeof value === 'string') {
    if (value.includes('\0')) addFieldError(found, at, 'Null characters are not allowed.');
    if (!value.isWellFormed()) {
      const code = (/\p{Cs}/u.exec(value)?.[0] ?? '').charCodeAt(0).toString(16).toUpperCase();
      addFieldError(found, at, `Surrogate characters are not allowed: U+${code}.`);
    }
  } else if (Array.isArray(value)) {
    for (const item of value) findTextProblems(item, opaque, path, found, depth + 1);
  } else if (value !== null && typeof value === 'object') {
    const frozen = path.length > 0 && opaque.has(path[0] ?? '');
    for (const [key, item] of Object.entries(value)) {
      const childPath = frozen ? path : [...path, key];
      findTextProblems(key, opaque, childPath, found, depth + 1);
      findTextProblems(item, opaque, childPath, found, depth + 1);
    }
  }
  return found;
}

/** Top-level properties whose schema has no type: free-form JSON such as external_metadata. */
function opaqueProperties(schema: { properties?: Record<string, { type?: unknown }> }): Set<string> {
  return new Set(
    Object.entries(schema.properties ?? {})
      .filter(([, property]) => property.type === undefined)
      .map(([name]) => name),
  );
}

/** Top-level properties of a query schema that are integers. */
function integerProperties(schema: { properties?: Record<string, { type?: unknown }> }): string[] {
  return Object.entries(schema.properties ?? {})
    .filter(([, property]) => property.type === 'integer')
    .map(([name]) => name);
}

const NOT_AN_INTEGER = 'A valid integer is required.';

/**
 * What DRF's IntegerField takes from a query string (Python's int() after dropping a ".0" tail):
 * digits with an optional sign and surrounding spaces. Ajv's coercion would also take "0x10" and "1e3".
 */
const QUERY_INTEGER = /^\s*[+-]?\d+(?:\.0*)?\s*$/;

function typeMessage(expected: string[], value: unknown): string {
  if (expected.includes('object')) return `Invalid data. Expected a dictionary, but got ${pythonTypeName(value)}.`;
  if (expected.includes('integer') || expected.includes('number')) return NOT_AN_INTEGER;
  if (expected.includes('array')) return `Expected a list of items but got type "${pythonTypeName(value)}".`;
  return 'Not a valid string.';
}

function messageFor(error: ErrorObject, formats: Record<string, FormatMessage>): string {
  const { keyword, params, data } = error;
  switch (keyword) {
    case 'type':
      return typeMessage(String(params.type).split(','), data);
    case 'maxLength':
      return `Ensure this field has no more than ${params.limit} characters.`;
    case 'minLength':
      return params.limit === 1 ? 'This field may not be blank.' : `Ensure this field has at least ${params.limit} characters.`;
    case 'minimum':
      return `Ensure this value is greater than or equal to ${params.limit}.`;
    case 'maximum':
      return `Ensure this value is less than or equal to ${params.limit}.`;
    case 'required':
      return 'This field is required.';
    case 'enum': {
      const hint = (error.parentSchema as { 'x-invalid-choice'?: string } | undefined)?.['x-invalid-choice'];
      return `"${String(data)}" is not a valid choice.${hint === undefined ? '' : ` ${hint}`}`;
    }
    case 'maxItems':
      return `Ensure this field has no more than ${params.limit} elements.`;
    case 'format': {
      const message = formats[String(params.format)];
      return typeof message === 'function' ? message(String(data)) : (message ?? 'Invalid value.');
    }
    default:
      return 'Invalid value.';
  }
}

function pathOf(error: ErrorObject): string[] {
  const parts = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (error.keyword === 'required') parts.push(String(error.params.missingProperty));
  // A wrong type for a whole object is DRF's non_field_errors of that object.
  if (error.keyword === 'type' && String(error.params.type).includes('object')) parts.push('non_field_errors');
  return parts.length ? parts : ['non_field_errors'];
}

export type FormatMessage = string | ((value: string) => string);

export interface StringFormat {
  validate: (value: string) => boolean;
  message: FormatMessage;
}

/**
 * Fastify validator compiler. Body and querystring are checked against their schemas and the
 * NUL/surrogate rule; path params are not validated here (a malformed id is simply "Not found.").
 * Each schema is compiled on its route's first request (see lazy-schemas.ts).
 */
export function createValidatorCompiler(
  formats: Record<string, StringFormat>,
  compiles: DeferredCompiles = new DeferredCompiles(),
): FastifySchemaCompiler<unknown> {
  const options = { allErrors: true, strict: false, verbose: true, validateFormats: true } as const;
  const bodyAjv = new Ajv({ ...options, coerceTypes: false });
  const queryAjv = new Ajv({ ...options, coerceTypes: true });
  const messages: Record<string, FormatMessage> = {};
  for (const [name, format] of Object.entries(formats)) {
    bodyAjv.addFormat(name, { type: 'string', validate: format.validate });
    queryAjv.addFormat(name, { type: 'string', validate: format.validate });
    messages[name] = format.message;
  }
  for (const ajv of [bodyAjv, queryAjv]) {
    ajv.addFormat('uuid', true).addFormat('date-time', true).addFormat('uri', true);
  }

  return ({ schema, httpPart }) => {
    if (httpPart === 'params' || httpPart === 'headers') return () => true;
    return compiles.onFirstUse(() => {
      const validate: ValidateFunction = (httpPart === 'querystring' ? queryAjv : bodyAjv).compile(schema as object);
      const opaque = opaqueProperties(schema as Parameters<typeof opaqueProperties>[0]);
      const integers = httpPart === 'querystring' ? integerProperties(schema as Parameters<typeof integerProperties>[0]) : [];
      return (data: unknown) => {
        const problems = findTextProblems(data, opaque);
        const query = data as Record<string, unknown>;
        for (const name of integers) {
          const raw = query[name];
          if (typeof raw === 'string' && !QUERY_INTEGER.test(raw)) addFieldError(problems, [name], NOT_AN_INTEGER);
        }
        const valid = validate(data);
        if (valid && Object.keys(problems).length === 0) return { value: data };
        const fields: FieldErrors = problems;
        for (const error of validate.errors ?? []) addFieldError(fields, pathOf(error), messageFor(error, messages));
        return { error: errors.validation(fields) };
      };
    });
  };
}
