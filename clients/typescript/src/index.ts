// @users-api/client: the typed client of the Users API (no Node-only imports: the Link client runs in browsers too).
// The webhook receiver helper is @users-api/client/webhooks.
export * from './client.js';
export { isDetailError, isUsersApiError, UsersApiError, type DetailError, type ErrorBody, type FieldErrors } from './errors.js';
export { PageWalk, type Page } from './paging.js';
export type { components, operations, paths } from './schema.js';
