// Why a webhook delivery failed, in words: the service records Node's error code (ENOTFOUND), "HTTP 500" or
// "no answer within 10000 ms". No imports, so the browser tests check it directly too.

const PLAIN: Record<string, string> = {
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed for now (DNS did not answer)',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed while sending',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EINTERNAL: 'host name resolves only to internal addresses',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed TLS certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed TLS certificate in the chain',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate not trusted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS certificate is for another host name',
};

/** `ENOTFOUND` → `host name not found (ENOTFOUND)`; anything else ("HTTP 500", "no answer within …", ETIMEDOUT) as is. */
export function describeDeliveryError(error: string): string {
  const plain = Object.hasOwn(PLAIN, error) ? PLAIN[error] : undefined;
  return plain ? `${plain} (${error})` : error;
}
