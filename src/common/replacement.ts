/**
 * Re-pairing proof: a connector paired again (`pair --force`, the page's "Pair again") signs, with
 * the key of the identity it replaces, a statement naming that identity, the pairing token it
 * redeems and the new CSR. The cloud verifies it against the old identity's certificate and retires
 * the old record at once: otherwise every re-pairing left behind an "offline" connector whose
 * certificate stayed valid, a credential on a disk nobody watches any more.
 *
 * Binding the token id and the CSR means a proof cannot be replayed into another pairing. What a
 * proof can do, revoke the identity whose key signed it, the key's holder could already do (by
 * being that connector), so it grants nothing new.
 */
import { createHash, sign, verify, X509Certificate } from 'node:crypto';

/** The bytes signed: a fixed label, the identity replaced, the token redeemed, the new CSR's hash. */
export function replacementStatement(connectorId: string, tokenId: string, csrPem: string): Buffer {
  const csrHash = createHash('sha256').update(csrPem, 'utf8').digest('hex');
  return Buffer.from(`uemlink-replace-v1\n${connectorId}\n${tokenId}\n${csrHash}`, 'utf8');
}

export function signReplacement(privateKeyPem: string, connectorId: string, tokenId: string, csrPem: string): string {
  return sign('sha256', replacementStatement(connectorId, tokenId, csrPem), privateKeyPem).toString('base64');
}

/** True when `signature` was made by the key of one of these certificates; never throws. */
export function verifyReplacement(certificatePems: readonly string[], signature: string, connectorId: string, tokenId: string, csrPem: string): boolean {
  const statement = replacementStatement(connectorId, tokenId, csrPem);
  const sig = Buffer.from(signature, 'base64');
  return certificatePems.some((pem) => {
    try {
      return verify('sha256', statement, new X509Certificate(pem).publicKey, sig);
    } catch {
      return false;
    }
  });
}
