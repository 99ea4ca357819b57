// @users-api/client: the typed client of the Users API.
export type { components, operations, paths } from './schema.js';
