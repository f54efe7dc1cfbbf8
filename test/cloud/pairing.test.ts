import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../src/common/clock.js';
import { parsePairingToken } from '../../src/common/pairing-token.js';
import { createCsr, generateRsaKeyPair } from '../../src/common/pki.js';
import { ConnectorCA } from '../../src/cloud/ca.js';
import { PairingService } from '../../src/cloud/pairing.js';
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
