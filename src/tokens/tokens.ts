// User tokens: short-lived HS256 JWTs that the client's front end hands to Link.
import { createHmac, randomUUID } from 'node:crypto';
import { jwtVerify } from 'jose';

export const USER_TOKEN_TTL_SECONDS = 3600;

const base64url = (json: object) => Buffer.from(JSON.stringify(json)).toString('base64url');
const HEADER = base64url({ alg: 'HS256', typ: 'JWT' });

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
    // Signed with node:crypto's HMAC directly: jose signs through WebCrypto, asynchronously, at ~20x the
    // cost per token (90 µs against 4.5 µs measured here). Verification stays with jose.
    const signingInput = `${HEADER}.${base64url(claims)}`;
    return `${signingInput}.${createHmac('sha256', this.key).update(signingInput).digest('base64url')}`;
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
