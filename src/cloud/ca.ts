/**
 * The connector CA: created at the cloud's first start in dataDir (ca.key 0600, ca.crt), it signs
 * each paired connector's certificate. Tunnel authentication checks that the connector's certificate
 * was issued by it, is within its validity and is not revoked, then that the connector signed the
 * session's fresh nonce with the matching key.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UemlinkError } from '../common/errors.js';
import { ensurePrivateDir, writePrivateFile } from '../common/fs-secure.js';
import { certInfo, generateRsaKeyPair, issueCertificate, parseCsr, type CertInfo } from '../common/pki.js';

export interface IssuedCertificate {
  certificatePem: string;
  info: CertInfo;
}

export class ConnectorCA {
  readonly certificatePem: string;
  private readonly keyPem: string;
  private readonly x509: X509Certificate;

  private constructor(certificatePem: string, keyPem: string) {
    this.certificatePem = certificatePem;
    this.keyPem = keyPem;
    this.x509 = new X509Certificate(certificatePem);
  }

  /** Loads the CA from dataDir, creating it on first start. A half-present CA is an error, not a reset. */
  static async loadOrCreate(dataDir: string): Promise<{ ca: ConnectorCA; created: boolean }> {
    await ensurePrivateDir(dataDir);
    const keyFile = join(dataDir, 'ca.key');
    const certFile = join(dataDir, 'ca.crt');
    const key = await readOptional(keyFile);
    const cert = await readOptional(certFile);
    if (key !== undefined && cert !== undefined) {
      try {
        const ca = new ConnectorCA(cert, key);
        // The pair must match, or every connector would fail authentication later.
        if (!createPublicKey(createPrivateKey(key)).export({ type: 'spki', format: 'der' }).equals(ca.x509.publicKey.export({ type: 'spki', format: 'der' }))) {
          throw new Error('ca.key does not belong to ca.crt');
        }
        return { ca, created: false };
      } catch (e) {
        throw new UemlinkError('STATE_CORRUPT', `connector CA in ${dataDir} is unusable: ${(e as Error).message}`, { cause: e });
      }
    }
    if (key !== undefined || cert !== undefined) {
      throw new UemlinkError(
        'STATE_CORRUPT',
        `connector CA in ${dataDir} is incomplete (${key === undefined ? 'ca.key' : 'ca.crt'} is missing); restore it from a backup — a new CA would orphan every paired connector`,
      );
    }
    const pair = generateRsaKeyPair(3072);
    const pem = issueCertificate({
      subject: { CN: 'uemlink connector CA', O: 'uemlink' },
      publicKeyPem: pair.publicKeyPem,
      signingKeyPem: pair.privateKeyPem,
      days: 3650,
      isCa: true,
    });
    await writePrivateFile(keyFile, pair.privateKeyPem, 'CA key');
    await writePrivateFile(certFile, pem, 'CA certificate');
    return { ca: new ConnectorCA(pem, pair.privateKeyPem), created: true };
  }

  /** Signs a connector's CSR. The subject is ours to choose: the CSR's own subject is ignored. */
  issue(csrPem: string, subject: { connectorId: string; tenant: string; group: string }, days: number): IssuedCertificate {
    let csr;
    try {
      csr = parseCsr(csrPem);
    } catch (e) {
      throw new UemlinkError('PAIR_CSR_INVALID', `certificate request rejected: ${(e as Error).message}`);
    }
    if (csr.keyBits < 2048) throw new UemlinkError('PAIR_CSR_INVALID', `certificate request rejected: RSA key of ${csr.keyBits} bits (2048 or more required)`);
    const certificatePem = issueCertificate({
      subject: { CN: subject.connectorId, O: subject.tenant, OU: subject.group },
      publicKeyPem: csr.publicKeyPem,
      issuerCertPem: this.certificatePem,
      signingKeyPem: this.keyPem,
      days,
      clientAuth: true,
    });
    return { certificatePem, info: certInfo(certificatePem) };
  }

  /** Why a presented certificate must not authenticate, or undefined when it may. */
  check(cert: X509Certificate, now: number): string | undefined {
    if (!cert.checkIssued(this.x509) || !cert.verify(this.x509.publicKey)) return 'certificate was not issued by this cloud';
    if (now < Date.parse(cert.validFrom)) return `certificate is not valid before ${new Date(cert.validFrom).toISOString()} (check the clock)`;
    if (now > Date.parse(cert.validTo)) return `certificate expired on ${new Date(cert.validTo).toISOString()}; pair the connector again`;
    return undefined;
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UemlinkError('STATE_UNREADABLE', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
}
