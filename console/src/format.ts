// How values read: unambiguous timestamps, masked SSNs, and the messages that say what to do about an error.
import { ApiError, type FieldErrors } from './api';

/** `2026-12-01T22:07:31.170468Z` → `2026-12-01 22:07:31 UTC`: the same for everyone supporting one applicant. */
export function formatTimestamp(value: string | null): string {
  if (!value) return '—';
  return `${value.slice(0, 10)} ${value.slice(11, 19)} UTC`;
}

/** Every digit but the last four hidden. */
export function maskSsn(ssn: string): string {
  return ssn.replace(/\d(?=(?:\D*\d){4})/g, '•');
}

export function orDash(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '—' : String(value);
}

/** First and last name as a person writes them (either alone when the other is missing); '' when there is neither. */
export function fullName(user: { first_name: string | null; last_name: string | null }): string {
  return [user.first_name, user.last_name]
    .map((part) => part?.trim() ?? '')
    .filter(Boolean)
    .join(' ');
}

export function list(values: readonly string[]): string {
  return values.length ? values.join(', ') : '—';
}

/** What went wrong and what to do, for a person; `what` names the thing tried ("load the users"). */
export function describeError(error: unknown, what: string): string {
  if (!(error instanceof ApiError)) return `Could not ${what}: ${error instanceof Error ? error.message : String(error)}. Reload the page and try again.`;
  const reference = error.requestId ? ` (request id ${error.requestId})` : '';
  switch (true) {
    case error.status === 0:
      return `Could not ${what}: the service did not answer. Check your network connection and that the service is running, then try again.`;
    case error.status === 401:
      return `Could not ${what}: the service did not accept this API key. Sign in again.`;
    case error.status === 404:
      return `Could not ${what}: it was not found. It may have been deleted; go back and reload the list.`;
    case error.status === 429:
      return `Could not ${what}: too many requests for this API key. Wait ${error.retryAfterSeconds ?? 60} seconds, then try again.`;
    case error.status === 503:
      return `Could not ${what}: the service is busy or its database is not answering. Try again in a minute.`;
    case error.status >= 500:
      return `Could not ${what}: the service failed${reference}. Try again; if it keeps failing, give the request id to whoever runs the service.`;
    default: {
      const said = error.detail ?? flattenErrors(error.fields ?? {}).join(' ');
      return `Could not ${what}: ${said || `the service answered ${error.status}${reference}`}.`.replace(/\.\.$/, '.');
    }
  }
}

/** The messages at `path` of a field-error tree (a nested object's messages included). */
export function messagesAt(fields: FieldErrors | undefined, ...path: string[]): string[] {
  let node: FieldErrors | string[] | undefined = fields;
  for (const key of path) {
    if (node === undefined || Array.isArray(node) || !Object.hasOwn(node, key)) return [];
    node = node[key];
  }
  if (node === undefined) return [];
  return Array.isArray(node) ? node.map(String) : flattenErrors(node);
}

/** Every message of a tree as "field.sub: message". */
export function flattenErrors(fields: FieldErrors, prefix = ''): string[] {
  return Object.entries(fields).flatMap(([key, value]) => {
    const name = key === 'non_field_errors' ? prefix.replace(/\.$/, '') : `${prefix}${key}`;
    if (Array.isArray(value)) return value.map((message) => (name ? `${name}: ${String(message)}` : String(message)));
    return flattenErrors(value, `${name}${name ? '.' : ''}`);
  });
}

/** Messages of fields the form does not show (and non_field_errors), so that none goes unseen. */
export function otherMessages(fields: FieldErrors | undefined, shown: readonly string[]): string[] {
  if (!fields) return [];
  const rest = Object.fromEntries(Object.entries(fields).filter(([key]) => !shown.includes(key)));
  return flattenErrors(rest);
}

/** The messages about a nested object as a whole: its non_field_errors (or a list given for it). */
export function groupMessages(fields: FieldErrors | undefined, key: string): string[] {
  const node = fields && Object.hasOwn(fields, key) ? fields[key] : undefined;
  if (node === undefined) return [];
  return Array.isArray(node) ? node.map(String) : messagesAt(node, 'non_field_errors');
}
