/**
 * How the connector decides to trust a UEM server: the system CAs plus the target's own CA (for
 * self-signed and internal CAs), hostname verification always on, and optional pins on the server
 * certificate or its public key. There is deliberately no option to switch verification off.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type SecureContext } from 'node:tls';
import forge from 'node-forge';
import { certInfo, type CertInfo } from '../../common/pki.js';
import { withSystemRoots } from '../../common/tls-trust.js';

export class TrustError extends Error {}

/**
 * Parses a PEM certificate or bundle (node-forge reads the PEM armour, node's X509 the certificates,
 * which covers RSA and EC alike). Throws TrustError naming the problem; `source` names the file.
 */
export function parseCaBundle(pem: string, source: string, now = Date.now()): { pems: string[]; info: CertInfo[] } {
  let blocks: ReturnType<typeof forge.pem.decode>;
  try {
    blocks = forge.pem.decode(pem);
  } catch (e) {
    throw new TrustError(`${source}: not a PEM file (${(e as Error).message})`);
  }
  const certs = blocks.filter((b) => b.type === 'CERTIFICATE');
  if (certs.length === 0) {
    const kinds = blocks.map((b) => b.type).join(', ');
    throw new TrustError(`${source}: no certificate in it${kinds ? ` (found: ${kinds})` : ''}`);
  }
  const pems: string[] = [];
  const info: CertInfo[] = [];
  for (const b of certs) {
    let x: X509Certificate;
    try {
      x = new X509Certificate(Buffer.from(b.body, 'binary'));
    } catch (e) {
      throw new TrustError(`${source}: a CERTIFICATE block is not a valid X.509 certificate (${(e as Error).message})`);
    }
    const i = certInfo(x);
    if (Date.parse(i.notAfter) < now) throw new TrustError(`${source}: certificate "${i.subject}" expired on ${i.notAfter}`);
    pems.push(x.toString());
    info.push(i);
  }
  return { pems, info };
}

/** Accepts hex (with or without colons), base64, or "sha256/<base64>"; returns the 32 raw bytes. */
export function parsePin(pin: string): Buffer {
  const p = pin.trim().replace(/^sha256\//i, '');
  if (/^([0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$/.test(p) || /^[0-9a-fA-F]{64}$/.test(p)) return Buffer.from(p.replace(/:/g, ''), 'hex');
  const b = Buffer.from(p, 'base64');
  if (b.length === 32 && /^[A-Za-z0-9+/]{43}=$/.test(p)) return b;
  throw new TrustError(`pin "${pin.slice(0, 20)}…" is not a SHA-256 fingerprint (64 hex digits or 44 base64 characters)`);
}

/** SHA-256 of the certificate (DER) and of its SubjectPublicKeyInfo. */
export function fingerprints(certDer: Buffer): { cert: Buffer; spki: Buffer } {
  const x = new X509Certificate(certDer);
  return {
    cert: createHash('sha256').update(certDer).digest(),
    spki: createHash('sha256').update(x.publicKey.export({ type: 'spki', format: 'der' })).digest(),
  };
}

export interface TrustConfig {
  caPems: string[];
  pins: Buffer[];
  serverName?: string;
}

/** Error codes of our own checks, next to Node's (CERT_HAS_EXPIRED, ...). */
export const PIN_MISMATCH = 'ERR_UEMLINK_PIN_MISMATCH';

/** TLS options for an https.Agent or request towards a target (or its OAuth token endpoint). */
// One secure context per trust configuration. Handing Node's https.Agent a `ca` array instead would
// cost dearly: the agent's pool key (Agent.getName) concatenates every CA PEM on every request, which
// profiled as a third of the connector's CPU under load. A secureContext is not part of that key.
const contexts = new WeakMap<TrustConfig, SecureContext>();

export function tlsOptionsFor(t: TrustConfig, host: string): {
  secureContext?: SecureContext;
  servername?: string;
  rejectUnauthorized: true;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
} {
  const name = t.serverName ?? host;
  const o: ReturnType<typeof tlsOptionsFor> = {
    rejectUnauthorized: true,
    checkServerIdentity: (h, cert) => {
      const e = checkServerIdentity(t.serverName ?? h, cert);
      if (e) return e;
      if (t.pins.length > 0) {
        const fp = fingerprints(cert.raw);
        if (!t.pins.some((p) => p.equals(fp.cert) || p.equals(fp.spki))) {
          return Object.assign(
            new Error(`certificate "${cert.subject?.CN ?? '?'}" does not match the configured pin (certificate SHA-256 ${fp.cert.toString('hex')})`),
            { code: PIN_MISMATCH },
          );
        }
      }
      return undefined;
    },
  };
  if (t.caPems.length > 0) {
    let ctx = contexts.get(t);
    if (!ctx) contexts.set(t, (ctx = withSystemRoots(t.caPems)));
    o.secureContext = ctx;
  }
  if (!isIP(name)) o.servername = name;
  return o;
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
  PIN_MISMATCH,
]);

export function isTlsError(err: { code?: string | undefined; message?: string | undefined }): boolean {
  return (err.code !== undefined && TLS_CODES.has(err.code)) || /SSL|TLS|certificate/i.test(err.message ?? '');
}

export function describeTlsFailure(code: string | undefined): string {
  switch (code) {
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return 'not signed by a trusted CA (configure the UEM\'s CA with tls.caFile)';
    case 'CERT_HAS_EXPIRED':
      return 'the certificate has expired';
    case 'CERT_NOT_YET_VALID':
      return 'the certificate is not valid yet (check clocks)';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'the certificate is for another host name (set tls.serverName, or use the name in the certificate)';
    case PIN_MISMATCH:
      return 'the certificate does not match tls.pinSha256';
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'EPROTO':
      return 'the server does not speak TLS on that port';
    default:
      return `TLS handshake failed${code ? ` (${code})` : ''}`;
  }
}

/**
 * Reads the certificate a server presents without trusting it and without sending any request: used
 * only to tell the admin *which* certificate failed verification (subject, issuer, expiry).
 */
export function probePeerCertificate(host: string, port: number, servername: string | undefined, timeoutMs = 5000): Promise<CertInfo | undefined> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false, ...(servername && !isIP(servername) ? { servername } : {}) });
    const done = (v: CertInfo | undefined): void => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(undefined), timeoutMs);
    s.once('secureConnect', () => {
      const c = s.getPeerCertificate();
      done(c?.raw ? certInfo(new X509Certificate(c.raw)) : undefined);
    });
    s.once('error', () => done(undefined));
  });
}
