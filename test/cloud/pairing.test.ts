import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../src/common/clock.js';
import { parsePairingToken } from '../../src/common/pairing-token.js';
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { createCsr, generateRsaKeyPair, parseCsr } from '../../src/common/pki.js';
import { ConnectorCA } from '../../src/cloud/ca.js';
import { PairingService } from '../../src/cloud/pairing.js';
import { signReplacement } from '../../src/common/replacement.js';
import { openCloudStore } from '../../src/cloud/state.js';
import { tempDir } from '../helpers/procs.js';

function fakeClock(start: number): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    setInterval: (fn, ms) => setInterval(fn, ms),
    clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
    advance(ms) {
      now += ms;
    },
  };
}

describe('pairing service', function () {
  this.timeout(30_000);
  const keys = generateRsaKeyPair(2048);
  const csr = createCsr(keys.privateKeyPem, { CN: 'host' });

  async function service(clock = fakeClock(Date.now())) {
    const dir = tempDir();
    const store = openCloudStore(dir);
    const { ca } = await ConnectorCA.loadOrCreate(dir);
    return { dir, store, ca, clock, svc: new PairingService(store, ca, 'https://relay.example.com', 365, clock) };
  }

  it('tokens carry the cloud URL, >= 128 bits of secret, and are stored only as a hash', async () => {
    const { svc, dir } = await service();
    const t = await svc.createToken({ tenant: 'acme' });
    const parsed = parsePairingToken(t.token);
    expect(parsed.cloudUrl).to.equal('https://relay.example.com');
    expect(Buffer.from(parsed.secret, 'base64url').length * 8).to.be.at.least(128);
    const file = readFileSync(join(dir, 'cloud-state.json'), 'utf8');
    expect(file).to.not.contain(parsed.secret);
    expect(t.group).to.equal('default');
  });

  it('a token pairs exactly one connector, even when redeemed concurrently', async () => {
    const { svc } = await service();
    const t = await svc.createToken({ tenant: 'acme', group: 'g1' });
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => svc.redeem({ token: t.token, csr })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok).to.have.length(1);
    for (const r of results.filter((x) => x.status === 'rejected')) expect((r as PromiseRejectedResult).reason.code).to.equal('PAIR_TOKEN_USED');
  });

  it('issues a certificate for the connector id, signed by the connector CA, bound to tenant and group', async () => {
    const { svc, ca } = await service();
    const t = await svc.createToken({ tenant: 'acme', group: 'site-b' });
    const r = await svc.redeem({ token: t.token, csr, hostname: 'h1' });
    const cert = new X509Certificate(r.certificate);
    expect(cert.subject).to.contain(`CN=${r.connectorId}`).and.contain('O=acme').and.contain('OU=site-b');
    expect(ca.problem(ca.inspect(cert), Date.now())).to.equal(undefined);
    expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).to.equal(keys.publicKeyPem);
    expect(r).to.include({ tenant: 'acme', group: 'site-b', cloudUrl: 'https://relay.example.com' });
  });

  it('expires tokens (default 1 h), and distinguishes expired, unknown, malformed and used', async () => {
    const { svc, clock } = await service();
    const t = await svc.createToken({ tenant: 'acme' });
    expect(Date.parse(t.expiresAt) - clock.now()).to.equal(3600_000);
    clock.advance(3600_001);
    await expectCode(svc.redeem({ token: t.token, csr }), 'PAIR_TOKEN_EXPIRED');
    const p = parsePairingToken(t.token);
    const wrongSecret = t.token.slice(0, -4) + (p.secret.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    await expectCode(svc.redeem({ token: wrongSecret, csr }), 'PAIR_TOKEN_UNKNOWN');
    await expectCode(svc.redeem({ token: 'hello', csr }), 'PAIR_TOKEN_MALFORMED');
    await expectCode(svc.redeem({ token: t.token.slice(0, -10), csr }), 'PAIR_TOKEN_MALFORMED');
  });

  it('an invalid CSR does not consume the token', async () => {
    const { svc } = await service();
    const t = await svc.createToken({ tenant: 'acme' });
    await expectCode(svc.redeem({ token: t.token, csr: 'not a csr' }), 'PAIR_CSR_INVALID');
    const weak = generateRsaKeyPair(1024);
    await expectCode(svc.redeem({ token: t.token, csr: createCsr(weak.privateKeyPem, { CN: 'x' }) }), 'PAIR_CSR_INVALID');
    expect((await svc.redeem({ token: t.token, csr })).connectorId).to.match(/^cn_/);
  });

  it('validates tenant, group and ttl (at most 7 days)', async () => {
    const { svc } = await service();
    await expectCode(svc.createToken({ tenant: 'ACME' }), 'INVALID_INPUT');
    // "constructor" is inherited by the plain object that maps tenants: refused (found in review).
    await expectCode(svc.createToken({ tenant: 'constructor' }), 'INVALID_INPUT');
    await expectCode(svc.createToken({ tenant: 'acme', group: 'a b' }), 'INVALID_INPUT');
    await expectCode(svc.createToken({ tenant: 'acme', ttlSeconds: 7 * 86400 + 1 }), 'INVALID_INPUT');
    await expectCode(svc.createToken({ tenant: 'acme', ttlSeconds: 59 }), 'INVALID_INPUT');
    const ok = await svc.createToken({ tenant: 'acme', ttlSeconds: 7 * 86400 });
    expect(ok.tenant).to.equal('acme');
  });

  it('the CA survives restarts and a half-deleted CA is an error, never silently regenerated', async () => {
    const dir = tempDir();
    const a = await ConnectorCA.loadOrCreate(dir);
    const b = await ConnectorCA.loadOrCreate(dir);
    expect(a.created).to.equal(true);
    expect(b.created).to.equal(false);
    expect(b.ca.certificatePem).to.equal(a.ca.certificatePem);
    const { unlinkSync } = await import('node:fs');
    unlinkSync(join(dir, 'ca.key'));
    await expectCode(ConnectorCA.loadOrCreate(dir), 'STATE_CORRUPT');
  });
});

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err as { code?: string },
  );
  expect(e, `expected ${code}`).to.not.equal(undefined);
  expect(e!.code).to.equal(code);
}

/**
 * A syntactically valid CSR whose RSA key has an nBytes modulus and an eBytes public exponent, and a
 * junk signature: forge checks signatures in JavaScript with the request's own key, so checking
 * this one would block the event loop for seconds (hours for larger ones).
 */
function hostileCsr(nBytes: number, eBytes: number): string {
  const f = forge as unknown as {
    pki: {
      rsa: { generateKeyPair(o: { bits: number; e: number }): { publicKey: unknown; privateKey: unknown } };
      createCertificationRequest(): Record<string, unknown> & { setSubject(a: unknown[]): void; sign(k: unknown, md: unknown): void };
      setRsaPublicKey(n: unknown, e: unknown): unknown;
      certificationRequestToPem(c: unknown): string;
    };
    jsbn: { BigInteger: new (hex: string, radix: number) => unknown };
    md: { sha256: { create(): unknown } };
  };
  const keys = f.pki.rsa.generateKeyPair({ bits: 512, e: 0x10001 });
  const csr = f.pki.createCertificationRequest();
  csr.publicKey = keys.publicKey;
  csr.setSubject([{ shortName: 'CN', value: 'x' }]);
  csr.sign(keys.privateKey, f.md.sha256.create());
  const big = (bytes: number): unknown => {
    const b = randomBytes(bytes);
    b[0]! |= 0x80;
    b[bytes - 1]! |= 1;
    return new f.jsbn.BigInteger(b.toString('hex'), 16);
  };
  csr.publicKey = f.pki.setRsaPublicKey(big(nBytes), big(eBytes));
  csr.certificationRequestInfo = null;
  csr.signature = randomBytes(nBytes).toString('binary');
  return f.pki.certificationRequestToPem(csr);
}

describe('pairing again retires the identity it replaces', function () {
  this.timeout(60_000);
  const oldKeys = generateRsaKeyPair(2048);
  const newKeys = generateRsaKeyPair(2048);
  const oldCsr = createCsr(oldKeys.privateKeyPem, { CN: 'host' });
  const newCsr = createCsr(newKeys.privateKeyPem, { CN: 'host' });

  async function paired(tenant = 'acme') {
    const dir = tempDir();
    const store = openCloudStore(dir);
    const { ca } = await ConnectorCA.loadOrCreate(dir);
    const svc = new PairingService(store, ca, 'https://relay.example.com', 365);
    const first = await svc.redeem({ token: (await svc.createToken({ tenant })).token, csr: oldCsr });
    return { store, svc, oldId: first.connectorId };
  }
  const tokenId = (token: string) => parsePairingToken(token).id;

  it('with a proof from the old key: the old record is revoked, its certificate blocked, and it names its successor', async () => {
    const { store, svc, oldId } = await paired();
    const token = (await svc.createToken({ tenant: 'acme', group: 'branch' })).token;
    const r = await svc.redeem({ token, csr: newCsr, replaces: { connectorId: oldId, signature: signReplacement(oldKeys.privateKeyPem, oldId, tokenId(token), newCsr) } });
    expect(r.replaces).to.deep.equal({ connectorId: oldId, revoked: true });
    const s = await store.read();
    expect(s.connectors[oldId]).to.include({ replacedBy: r.connectorId });
    expect(s.connectors[oldId]!.revokedAt).to.be.a('string');
    expect(s.revokedCertificates.map((c) => c.fingerprint256)).to.include(s.connectors[oldId]!.fingerprint256);
    expect(s.connectors[r.connectorId]!.revokedAt).to.equal(undefined);
  });

  it('pairs but revokes nothing when the proof was made by another key, for another token or another CSR', async () => {
    const { store, svc, oldId } = await paired();
    const cases: Array<(token: string) => string> = [
      (token) => signReplacement(newKeys.privateKeyPem, oldId, tokenId(token), newCsr), // not the old key
      () => signReplacement(oldKeys.privateKeyPem, oldId, 'AAAAAAAAAAAA', newCsr), // replayed from another pairing
      (token) => signReplacement(oldKeys.privateKeyPem, oldId, tokenId(token), oldCsr), // for another CSR
    ];
    for (const proof of cases) {
      const token = (await svc.createToken({ tenant: 'acme' })).token;
      const r = await svc.redeem({ token, csr: newCsr, replaces: { connectorId: oldId, signature: proof(token) } });
      expect(r.connectorId).to.match(/^cn_/);
      expect(r.replaces).to.deep.equal({ connectorId: oldId, revoked: false, reason: `the proof was not made with ${oldId}'s key` });
    }
    expect((await store.read()).connectors[oldId]!.revokedAt).to.equal(undefined);
  });

  it("another tenant's connector is never revoked, and the answer does not tell it exists", async () => {
    const { store, svc, oldId } = await paired('globex');
    const token = (await svc.createToken({ tenant: 'acme' })).token;
    const r = await svc.redeem({ token, csr: newCsr, replaces: { connectorId: oldId, signature: signReplacement(oldKeys.privateKeyPem, oldId, tokenId(token), newCsr) } });
    const unknown = 'cn_00000000000000000000';
    const r2 = await svc.redeem({ token: (await svc.createToken({ tenant: 'acme' })).token, csr: newCsr, replaces: { connectorId: unknown, signature: 'AAAA' } });
    expect(r.replaces).to.deep.equal({ connectorId: oldId, revoked: false, reason: `no connector ${oldId} in tenant acme` });
    expect(r2.replaces).to.deep.equal({ connectorId: unknown, revoked: false, reason: `no connector ${unknown} in tenant acme` });
    expect((await store.read()).connectors[oldId]!.revokedAt).to.equal(undefined);
  });

  it('a malformed replaces field is refused naming the field, and leaves the token unused', async () => {
    const { store, svc, oldId } = await paired();
    const token = (await svc.createToken({ tenant: 'acme' })).token;
    for (const [replaces, field] of [
      [{ connectorId: 'cn_x', signature: 'AAAA' }, 'replaces.connectorId'],
      [{ connectorId: oldId, signature: 'not base64!' }, 'replaces.signature'],
      ['cn_x', 'replaces.connectorId'],
    ] as const) {
      const e = await svc.redeem({ token, csr: newCsr, replaces }).then(() => undefined, (x: Error & { code: string }) => x);
      expect(e?.code).to.equal('INVALID_INPUT');
      expect(e?.message).to.match(new RegExp(`^${field.replace('.', '\\.')}: `));
    }
    expect((await store.read()).pairingTokens.find((t) => t.id === tokenId(token))?.usedAt).to.equal(undefined);
  });
});

describe('hostile certificate requests (found in review)', () => {
  it('a key too large, or with a huge exponent, is refused by its size before its signature is checked', () => {
    // Were the signature checked first, the junk one would be the reason given (after a long stall).
    expect(() => parseCsr(hostileCsr(384, 3000))).to.throw(/RSA public exponent of \d+ bits/);
    expect(() => parseCsr(hostileCsr(1024, 3))).to.throw(/RSA key of 8192 bits \(2048 to 4096 accepted\)/);
    expect(() => parseCsr(hostileCsr(128, 3))).to.throw(/RSA key of 1024 bits/);
    expect(parseCsr(createCsr(generateRsaKeyPair(2048).privateKeyPem, { CN: 'host' })).keyBits).to.equal(2048);
  });

  it('pairing with one answers 400 PAIR_CSR_INVALID naming the exponent, and leaves the token unused', async () => {
    const dir = tempDir();
    const store = openCloudStore(dir);
    const { ca } = await ConnectorCA.loadOrCreate(dir);
    const svc = new PairingService(store, ca, 'https://relay.example.com', 365);
    const t = await svc.createToken({ tenant: 'acme' });
    const err = await svc.redeem({ token: t.token, csr: hostileCsr(384, 3000) }).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).to.equal('PAIR_CSR_INVALID');
    expect(err?.message).to.match(/exponent/);
    const rec = (await store.read()).pairingTokens.find((x) => t.token.includes(x.id));
    expect(rec?.usedAt).to.equal(undefined);
  });
});

describe('the console says which connector replaced a revoked one', () => {
  it('a revoked row names its successor; one revoked by hand does not', async () => {
    const { connectorsBody } = await import('../../src/cloud/console/pages/connectors.js');
    const base = {
      tenant: 'acme', group: 'default', hostname: 'gw', version: '1', connected: false, connectedAt: null, lastSeen: null, targets: [], pairedAt: '2026-01-01T00:00:00.000Z',
      revoked: true, revokedAt: new Date(Date.now() - 5_000).toISOString(), certificate: { notAfter: '2027-01-01T00:00:00.000Z', fingerprint256: 'AA' }, session: null,
    };
    const body = connectorsBody({
      connectors: [
        { ...base, id: 'cn_11111111111111111111', replacedBy: 'cn_22222222222222222222' },
        { ...base, id: 'cn_33333333333333333333', replacedBy: null },
      ],
      tenants: ['acme'], filter: undefined, csrf: 'x', now: Date.now(),
    }).toString();
    expect(body).to.match(/revoked <time [^>]+>\d+ s ago<\/time>, paired again as <code>cn_22222222222222222222<\/code>/);
    expect(body.match(/paired again as/g)).to.have.length(1);
  });
});

describe('revocation blocks every certificate a connector holds (found in review)', function () {
  this.timeout(30_000);
  it('a connector revoked by hand between a renewal and its first use of the new certificate: both certificates blocked', async () => {
    const { revokeConnector } = await import('../../src/cloud/admin-api.js');
    const { silentLogger } = await import('../../src/common/log.js');
    const dir = tempDir();
    const store = openCloudStore(dir);
    const { ca } = await ConnectorCA.loadOrCreate(dir);
    const svc = new PairingService(store, ca, 'https://relay.example.com', 365);
    const keys = generateRsaKeyPair(2048);
    const r = await svc.redeem({ token: (await svc.createToken({ tenant: 'acme' })).token, csr: createCsr(keys.privateKeyPem, { CN: 'h' }) });
    await store.update((s) => {
      s.connectors[r.connectorId]!.previousFingerprint256 = 'AA:BB';
      s.connectors[r.connectorId]!.previousCertificate = 'x';
    });
    const done = await revokeConnector({ store, registry: { disconnect: () => false } as never, logger: silentLogger(), clock: { now: () => Date.now() } as never }, r.connectorId);
    expect(done).to.deep.equal({ wasConnected: false });
    const blocked = (await store.read()).revokedCertificates.map((c) => c.fingerprint256);
    expect(blocked).to.include('AA:BB').and.include((await store.read()).connectors[r.connectorId]!.fingerprint256);
  });

  it('a third pairing with the first key leaves replacedBy naming the connector that replaced it first', async () => {
    const dir = tempDir();
    const store = openCloudStore(dir);
    const { ca } = await ConnectorCA.loadOrCreate(dir);
    const svc = new PairingService(store, ca, 'https://relay.example.com', 365);
    const oldKeys = generateRsaKeyPair(2048);
    const csrOld = createCsr(oldKeys.privateKeyPem, { CN: 'h' });
    const first = await svc.redeem({ token: (await svc.createToken({ tenant: 'acme' })).token, csr: csrOld });
    const again = async () => {
      const token = (await svc.createToken({ tenant: 'acme' })).token;
      const csr = createCsr(generateRsaKeyPair(2048).privateKeyPem, { CN: 'h' });
      return svc.redeem({ token, csr, replaces: { connectorId: first.connectorId, signature: signReplacement(oldKeys.privateKeyPem, first.connectorId, parsePairingToken(token).id, csr) } });
    };
    const second = await again();
    await again();
    expect((await store.read()).connectors[first.connectorId]!.replacedBy).to.equal(second.connectorId);
  });
});
