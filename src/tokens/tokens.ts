// User tokens: short-lived HS256 JWTs that the client's front end hands to Link.
import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';

export const USER_TOKEN_TTL_SECONDS = 3600;

export interface UserTokenClaims {
  client_id: string;
  exp: number;
  fid: string;
  iat: number;
  iss: string;
  jti: string;
  sub: string;
  user_id: string;
}

export class UserTokens {
  constructor(
    private readonly key: Uint8Array,
    private readonly issuer: string,
  ) {}

  async mint(clientId: string, userId: string, now = Date.now()): Promise<string> {
    const iat = Math.floor(now / 1000);
    // Claims in the seed token's (alphabetical) order.
    const claims: UserTokenClaims = {
      client_id: clientId,
      exp: iat + USER_TOKEN_TTL_SECONDS,
      fid: randomUUID(),
      iat,
      iss: this.issuer,
      jti: randomUUID(),
      sub: userId,
      user_id: userId,
    };
    return new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(this.key);
  }

  /** The claims of a token this service signed and that has not expired, or undefined. */
  async verify(token: string): Promise<UserTokenClaims | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'],
        issuer: this.issuer,
        requiredClaims: ['exp', 'iat', 'jti'],
      });
      const valid =
        typeof payload.client_id === 'string' &&
        typeof payload.user_id === 'string' &&
        payload.sub === payload.user_id &&
        typeof payload.exp === 'number' &&
        payload.exp - (payload.iat ?? 0) <= USER_TOKEN_TTL_SECONDS;
      return valid ? (payload as unknown as UserTokenClaims) : undefined;
    } catch {
      return undefined;
    }
  }
}
