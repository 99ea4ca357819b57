// The typed client (clients/typescript) against a test app served on a real port.
import type { AddressInfo } from 'node:net';
import { createUsersApiClient, type ConnectionOptions, type UsersApiClient } from '@users-api/client';
import type { IssuedKey } from '../../src/keys/keys.service.js';
import type { TestApi } from './app.js';

/** Listens on 127.0.0.1, port 0 (once per app); answers the base URL. */
export async function serve(api: TestApi): Promise<string> {
  if (!api.app.server.listening) await api.app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
}

/** A client of `api` with the tenant's key (or `as`'s), served on a real port. */
export async function clientOf(api: TestApi, { as = api.tenant, ...options }: Partial<ConnectionOptions> & { as?: IssuedKey } = {}): Promise<UsersApiClient> {
  return createUsersApiClient({ baseUrl: await serve(api), apiKeyId: as.api_key_id, apiKeySecret: as.api_key_secret, ...options });
}
