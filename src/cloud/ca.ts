/**
 * The connector CA: created at the cloud's first start in dataDir (ca.key 0600, ca.crt), it signs
 * each paired connector's certificate. Tunnel authentication checks that the connector's certificate
 * was issued by it, is within its validity and is not revoked, then that the connector signed the
 * session's fresh nonce with the matching key.
 *
 * Rotation (docs/runbook.md#rotating-the-connector-ca): `uemlink cloud ca rotate` adds a generation
 * (ca-2.key/ca-2.crt, …) that signs from then on, while every older generation still verifies.
 * Connectors whose certificate comes from an older generation are asked to renew over the tunnel at
 * their next connection, so nobody has to pair again; once `cloud ca status` shows none left on an
 * old generation, its files can be archived away.
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UemlinkError } from '../common/errors.js';
import { ensurePrivateDir, writePrivateFile } from '../common/fs-secure.js';
import { certInfo, generateRsaKeyPair, issueCertificate, parseCsr, type CertInfo } from '../common/pki.js';

export interface IssuedCertificate {
  certificatePem: string;
  info: CertInfo;
}

interface Generation {
  n: number;
  certificatePem: string;
  keyPem: string;
  x509: X509Certificate;
  /** x509.publicKey, made once: the getter builds a new KeyObject (~110 µs) on every call. */
  publicKey: KeyObject;
}

/** What authentication needs to know of a connector's certificate, worked out once (`inspect`). */
export interface CertFacts {
  /** The CA generation that issued it, or undefined if none of ours did. */
  issuer: number | undefined;
  validFromMs: number;
  validToMs: number;
}

const fileOf = (n: number, kind: 'key' | 'crt'): string => (n === 1 ? `ca.${kind}` : `ca-${n}.${kind}`);

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UemlinkError('STATE_UNREADABLE', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
}

function loadGeneration(dataDir: string, n: number, key: string, cert: string): Generation {
  try {
    const x509 = new X509Certificate(cert);
    // The pair must match, or every connector would fail authentication later.
    if (!createPublicKey(createPrivateKey(key)).export({ type: 'spki', format: 'der' }).equals(x509.publicKey.export({ type: 'spki', format: 'der' }))) {
      throw new Error(`${fileOf(n, 'key')} does not belong to ${fileOf(n, 'crt')}`);
    }
    return { n, certificatePem: cert, keyPem: key, x509, publicKey: x509.publicKey };
  } catch (e) {
    throw new UemlinkError('STATE_CORRUPT', `connector CA generation ${n} in ${dataDir} is unusable: ${(e as Error).message}`, { cause: e });
  }
}

function newGeneration(n: number): Generation {
  const pair = generateRsaKeyPair(3072);
  const pem = issueCertificate({
    subject: { CN: n === 1 ? 'uemlink connector CA' : `uemlink connector CA ${n}`, O: 'uemlink' },
    publicKeyPem: pair.publicKeyPem,
    signingKeyPem: pair.privateKeyPem,
    days: 3650,
    isCa: true,
  });
  const x509 = new X509Certificate(pem);
  return { n, certificatePem: pem, keyPem: pair.privateKeyPem, x509, publicKey: x509.publicKey };
}

async function writeGeneration(dataDir: string, g: Generation): Promise<void> {
  await writePrivateFile(join(dataDir, fileOf(g.n, 'key')), g.keyPem, 'CA key');
  await writePrivateFile(join(dataDir, fileOf(g.n, 'crt')), g.certificatePem, 'CA certificate');
}

export class ConnectorCA {
  /** Oldest first; the last one signs. */
  private readonly gens: Generation[];

  private constructor(gens: Generation[]) {
    this.gens = gens;
  }

  /** The current (signing) CA certificate. */
  get certificatePem(): string {
    return this.current.certificatePem;
  }

  get current(): Generation {
    return this.gens[this.gens.length - 1]!;
  }

  generations(): Array<{ generation: number; subject: string; notAfter: string; fingerprint256: string; current: boolean }> {
    return this.gens.map((g) => ({ generation: g.n, subject: g.x509.subject.replace(/\n/g, ', '), notAfter: new Date(g.x509.validTo).toISOString(), fingerprint256: g.x509.fingerprint256, current: g === this.current }));
  }

  /** Loads every generation from dataDir, creating the first at first start. A half-present generation is an error, not a reset. */
  static async loadOrCreate(dataDir: string, o: { create?: boolean } = {}): Promise<{ ca: ConnectorCA; created: boolean }> {
    const create = o.create ?? true;
    const absent = (): UemlinkError => new UemlinkError('NOT_FOUND', `there is no connector CA in ${dataDir} (the cloud creates it at its first start); check dataDir`);
    if (create) await ensurePrivateDir(dataDir);
    const names = new Set(
      await readdir(dataDir).catch((e: NodeJS.ErrnoException) => {
        if (!create && e.code === 'ENOENT') throw absent();
        throw e;
      }),
    );
    const numbers = [1, ...[...names].map((f) => /^ca-(\d+)\.(?:crt|key)$/.exec(f)?.[1]).filter((x): x is string => x !== undefined).map(Number)];
    const gens: Generation[] = [];
    for (const n of [...new Set(numbers)].sort((a, b) => a - b)) {
      const key = await readOptional(join(dataDir, fileOf(n, 'key')));
      const cert = await readOptional(join(dataDir, fileOf(n, 'crt')));
      if (key === undefined && cert === undefined) {
        if (n === 1) continue;
        throw new UemlinkError('STATE_CORRUPT', `connector CA generation ${n} in ${dataDir} is incomplete`);
      }
      if (key === undefined || cert === undefined) {
        throw new UemlinkError(
          'STATE_CORRUPT',
          `connector CA in ${dataDir} is incomplete (${key === undefined ? fileOf(n, 'key') : fileOf(n, 'crt')} is missing); restore it from a backup — a new CA would orphan every paired connector`,
        );
      }
      gens.push(loadGeneration(dataDir, n, key, cert));
    }
    if (gens.length > 0) return { ca: new ConnectorCA(gens), created: false };
    if (!create) throw absent();
    const g = newGeneration(1);
    await writeGeneration(dataDir, g);
    return { ca: new ConnectorCA([g]), created: true };
  }

  /** Adds a signing generation; the older ones keep verifying. Returns the new generation number. */
  static async rotate(dataDir: string): Promise<number> {
    const { ca } = await ConnectorCA.loadOrCreate(dataDir, { create: false });
    const g = newGeneration(ca.current.n + 1);
    await writeGeneration(dataDir, g);
    return g.n;
  }

  /** Signs a connector's CSR with the current generation. The subject is ours to choose: the CSR's own is ignored. */
  issue(csrPem: string, subject: { connectorId: string; tenant: string; group: string }, days: number): IssuedCertificate {
    let csr;
    try {
      csr = parseCsr(csrPem);
    } catch (e) {
      throw new UemlinkError('PAIR_CSR_INVALID', `certificate request rejected: ${(e as Error).message}`);
    }
    const g = this.current;
    const certificatePem = issueCertificate({
      subject: { CN: subject.connectorId, O: subject.tenant, OU: subject.group },
      publicKeyPem: csr.publicKeyPem,
      issuerCertPem: g.certificatePem,
      signingKeyPem: g.keyPem,
      days,
      clientAuth: true,
    });
    return { certificatePem, info: certInfo(certificatePem) };
  }

  /** The generation that issued `cert`, or undefined. */
  issuerOf(cert: X509Certificate): number | undefined {
    for (const g of this.gens) if (cert.checkIssued(g.x509) && cert.verify(g.publicKey)) return g.n;
    return undefined;
  }

  /**
   * The facts `problem` judges, worked out once per certificate. They cannot change while the
   * process runs: a certificate's content is fixed, and so are the generations loaded at start.
   */
  inspect(cert: X509Certificate): CertFacts {
    return { issuer: this.issuerOf(cert), validFromMs: Date.parse(cert.validFrom), validToMs: Date.parse(cert.validTo) };
  }

  /** Why a certificate with these facts must not authenticate at `now`, or undefined when it may. */
  problem(f: CertFacts, now: number): string | undefined {
    if (f.issuer === undefined) return 'certificate was not issued by this cloud';
    if (now < f.validFromMs) return `certificate is not valid before ${new Date(f.validFromMs).toISOString()} (check the clock)`;
    if (now > f.validToMs) return `certificate expired on ${new Date(f.validToMs).toISOString()}; pair the connector again`;
    return undefined;
  }
}
