/**
 * Keys, CSRs and certificates. node-forge builds the ASN.1 structures (CSRs, certificates,
 * extensions); node:crypto generates keys and computes signatures, which is ~50x faster than forge's
 * pure-JS RSA and matters when thousands of connectors pair at once.
 */
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

export interface KeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
}

export function generateRsaKeyPair(bits = 2048): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** forge only reads PKCS#1 / PKCS#8 RSA keys in its own format; convert through node. */
function forgePrivateKey(pem: string): forge.pki.rsa.PrivateKey {
  const pkcs1 = createPrivateKey(pem).export({ type: 'pkcs1', format: 'pem' }).toString();
  return forge.pki.privateKeyFromPem(pkcs1) as forge.pki.rsa.PrivateKey;
}

function forgePublicKey(pem: string): forge.pki.rsa.PublicKey {
  const spki = createPublicKey(pem).export({ type: 'spki', format: 'pem' }).toString();
  return forge.pki.publicKeyFromPem(spki) as forge.pki.rsa.PublicKey;
}

export interface Name {
  CN: string;
  O?: string;
  OU?: string;
}

function attrs(n: Name): forge.pki.CertificateField[] {
  const a: forge.pki.CertificateField[] = [{ shortName: 'CN', value: n.CN }];
  if (n.O) a.push({ shortName: 'O', value: n.O });
  if (n.OU) a.push({ shortName: 'OU', value: n.OU });
  return a;
}

/** A PKCS#10 request signed by the key it carries (proof the requester holds the key). */
export function createCsr(privateKeyPem: string, subject: Name): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forgePublicKey(createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }).toString());
  csr.setSubject(attrs(subject));
  csr.sign(forgePrivateKey(privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

export interface ParsedCsr {
  publicKeyPem: string;
  subject: Record<string, string>;
  keyBits: number;
}

/** RSA key sizes a connector's certificate request may have (connectors make 2048-bit keys). */
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 4096;
/** Longest PEM certificate request taken (pairing and renewal alike). */
export const MAX_CSR_CHARS = 16384;

/** Parses and checks a CSR's self-signature. Throws an Error with a plain reason when invalid. */
export function parseCsr(pem: string): ParsedCsr {
  let csr: ReturnType<typeof forge.pki.certificationRequestFromPem>;
  try {
    csr = forge.pki.certificationRequestFromPem(pem);
  } catch (e) {
    throw new Error(`not a PEM certificate request (${(e as Error).message})`);
  }
  if (!csr.publicKey) throw new Error('the request carries no RSA public key');
  // Bounded before the signature is checked: forge checks it in JavaScript with the request's own
  // modulus and exponent, and a 3,000-byte exponent alone blocked the event loop for 3-5 s (a larger
  // request, for hours), with the state file locked, before any size check ran.
  const pub = csr.publicKey as forge.pki.rsa.PublicKey;
  const keyBits = pub.n.bitLength();
  if (keyBits < MIN_RSA_BITS || keyBits > MAX_RSA_BITS) throw new Error(`RSA key of ${keyBits} bits (${MIN_RSA_BITS} to ${MAX_RSA_BITS} accepted)`);
  if (pub.e.bitLength() > 32) throw new Error(`RSA public exponent of ${pub.e.bitLength()} bits (at most 32 accepted; 65537 is usual)`);
  let ok = false;
  try {
    ok = csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new Error('the request signature does not match its key');
  const subject: Record<string, string> = {};
  for (const a of csr.subject.attributes) if (a.shortName) subject[a.shortName] = String(a.value);
  return { publicKeyPem: forge.pki.publicKeyToPem(pub), subject, keyBits };
}

export interface IssueSpec {
  subject: Name;
  publicKeyPem: string;
  /** The issuing CA (certificate PEM); omit for a self-signed certificate. */
  issuerCertPem?: string;
  /** Key that signs: the CA's, or the subject's own for self-signed. */
  signingKeyPem: string;
  notBefore?: Date;
  days: number;
  isCa?: boolean;
  /** DNS names and IP addresses for a server certificate's subjectAltName. */
  serverNames?: string[];
  clientAuth?: boolean;
  serverAuth?: boolean;
}

/**
 * A certificate serial (hex) from random bytes: a positive DER INTEGER with no leading zero byte.
 * Clearing only the top bit let a serial start 00 00 0x (x < 8): forge drops one leading zero, and
 * OpenSSL refuses the other ("illegal padding") when it parses the certificate: 1 certificate in
 * 65,536, so a 10,000-connector bench seeding failed about one run in seven, and so would that
 * share of pairings and renewals.
 */
export function certificateSerial(random: Buffer): string {
  const b = Buffer.from(random);
  b[0] = b[0]! & 0x7f || 0x01;
  return b.toString('hex');
}

/** Issues an X.509 v3 certificate; returns PEM. */
export function issueCertificate(spec: IssueSpec): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forgePublicKey(spec.publicKeyPem);
  cert.serialNumber = certificateSerial(randomBytes(16));
  // Backdated an hour: clocks of the two sides are rarely equal, and a cloud whose clock NTP steps
  // back (it ran fast) must still accept what it issued minutes before.
  const nb = spec.notBefore ?? new Date(Date.now() - 3600_000);
  cert.validity.notBefore = nb;
  cert.validity.notAfter = new Date(nb.getTime() + spec.days * 86_400_000);
  cert.setSubject(attrs(spec.subject));
  if (spec.issuerCertPem) cert.setIssuer(forge.pki.certificateFromPem(spec.issuerCertPem).subject.attributes);
  else cert.setIssuer(attrs(spec.subject));
  const exts: Array<Record<string, unknown>> = [
    { name: 'basicConstraints', cA: spec.isCa === true, critical: true },
    spec.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!spec.isCa) exts.push({ name: 'extKeyUsage', clientAuth: spec.clientAuth === true, serverAuth: spec.serverAuth === true });
  if (spec.serverNames?.length) {
    exts.push({
      name: 'subjectAltName',
      altNames: spec.serverNames.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })),
    });
  }
  if (spec.issuerCertPem) {
    const issuer = forge.pki.certificateFromPem(spec.issuerCertPem);
    const ski = issuer.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | null;
    if (ski?.subjectKeyIdentifier) exts.push({ name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(ski.subjectKeyIdentifier) });
  }
  cert.setExtensions(exts);
  cert.signatureOid = forge.pki.oids.sha256WithRSAEncryption!;
  cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption!;
  // forge's typings omit getTBSCertificate, which cert.sign() itself uses.
  const pkiExtra = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 };
  cert.tbsCertificate = pkiExtra.getTBSCertificate(cert);
  const tbs = Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.signature = cryptoSign('sha256', tbs, spec.signingKeyPem).toString('binary');
  return forge.pki.certificateToPem(cert);
}

export interface CertInfo {
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the DER certificate, colon-separated upper-case hex (as browsers show it). */
  fingerprint256: string;
  serialNumber: string;
}

export function certInfo(pemOrCert: string | X509Certificate): CertInfo {
  const c = typeof pemOrCert === 'string' ? new X509Certificate(pemOrCert) : pemOrCert;
  return {
    subject: c.subject.replace(/\n/g, ', '),
    issuer: c.issuer.replace(/\n/g, ', '),
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: new Date(c.validTo).toISOString(),
    fingerprint256: c.fingerprint256,
    serialNumber: c.serialNumber,
  };
}

/** Splits a PEM bundle into its certificates (in order). */
export function splitPemBundle(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** A throwaway CA and a server certificate for tests, demos and the UEM simulator. */
export function createTestPki(serverNames: string[], opts: { caName?: string; days?: number; notBefore?: Date } = {}): {
  caCertPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
} {
  const ca = generateRsaKeyPair(2048);
  const caCertPem = issueCertificate({
    subject: { CN: opts.caName ?? 'uemlink test CA', O: 'uemlink' },
    publicKeyPem: ca.publicKeyPem,
    signingKeyPem: ca.privateKeyPem,
    days: 3650,
    isCa: true,
  });
  const srv = generateRsaKeyPair(2048);
  const spec: IssueSpec = {
    subject: { CN: serverNames[0] ?? 'localhost', O: 'uemlink' },
    publicKeyPem: srv.publicKeyPem,
    issuerCertPem: caCertPem,
    signingKeyPem: ca.privateKeyPem,
    days: opts.days ?? 365,
    serverNames,
    serverAuth: true,
  };
  if (opts.notBefore) spec.notBefore = opts.notBefore;
  const certPem = issueCertificate(spec);
  return { caCertPem, caKeyPem: ca.privateKeyPem, certPem, keyPem: srv.privateKeyPem };
}
