/**
 * TLS session resumption on the tunnel, with real processes: a connector that redials a cloud
 * serving HTTPS resumes its TLS session, across a kill -9 of the cloud too (the ticket key is kept
 * in the data dir, 0600); a torn key file is replaced and costs one full handshake, nothing more.
 */
import { expect } from 'chai';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestPki } from '../../src/common/pki.js';
import { TICKET_KEY_FILE } from '../../src/cloud/tls-tickets.js';
import { makeConnector, startCloud, tempDir, until, type Cloud, type Connector, type LogLine } from '../helpers/procs.js';

describe('e2e: TLS session resumption on the tunnel (real processes)', function () {
  this.timeout(90_000);
  let cloud: Cloud;
  let conn: Connector;

  before(async () => {
    const pki = createTestPki(['127.0.0.1', 'localhost']);
    const dir = tempDir('uemlink-resume-cloud-');
    writeFileSync(join(dir, 'tls.crt'), pki.certPem);
    writeFileSync(join(dir, 'tls.key'), pki.keyPem, { mode: 0o600 });
    cloud = await startCloud({ dir, scheme: 'https', ca: pki.caCertPem, extra: { tls: { certFile: 'tls.crt', keyFile: 'tls.key' } } });
    const cdir = tempDir('uemlink-resume-conn-');
    writeFileSync(join(cdir, 'cloud-ca.pem'), pki.caCertPem);
    conn = await makeConnector({ dir: cdir, config: { cloud: { caFile: 'cloud-ca.pem' } } });
    const token = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' })).body.token as string;
    const r = await conn.pair(token);
    expect(r.code, r.stderr).to.equal(0);
    await conn.start();
  });
  after(async () => {
    await conn?.proc?.stop();
    await cloud?.proc.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    process.stderr.write(`--- cloud log ---\n${cloud.proc.raw.slice(-3000)}\n--- connector log ---\n${conn.proc.raw.slice(-3000)}${conn.proc.stderr}\n`);
  });

  const connects = (): LogLine[] => conn.proc.logs.filter((l) => l.message === 'tunnel connected');
  const nthConnect = (n: number): Promise<LogLine> => until(() => connects()[n - 1], 30_000, `tunnel connection #${n}`);
  const ticketFile = (): string => join(cloud.dir, 'data', TICKET_KEY_FILE);

  async function killAndRestartCloud(): Promise<void> {
    cloud.proc.kill('SIGKILL');
    await cloud.proc.wait();
    await cloud.restart();
  }

  it('the first connection makes a full handshake; the cloud keeps its ticket key private', async () => {
    const first = await nthConnect(1);
    expect(first).to.include({ tls: 'TLSv1.3', tlsResumed: false });
    expect(statSync(ticketFile()).mode & 0o777).to.equal(0o600);
    const stored = JSON.parse(readFileSync(ticketFile(), 'utf8')) as { key: string; createdAt: string };
    expect(Buffer.from(stored.key, 'base64')).to.have.length(48);
    expect(cloud.proc.raw + conn.proc.raw).to.not.contain(stored.key);
  });

  it('after a kill -9 and restart of the cloud, the connector resumes its TLS session', async () => {
    const before = connects().length;
    const keyBefore = readFileSync(ticketFile(), 'utf8');
    await killAndRestartCloud();
    const again = await nthConnect(before + 1);
    expect(again).to.include({ tls: 'TLSv1.3', tlsResumed: true });
    expect(readFileSync(ticketFile(), 'utf8')).to.equal(keyBefore);
    const seen = await until(() => cloud.proc.logs.find((l) => l.message === 'connector connected'), 10_000, 'the cloud logging the connection');
    expect(seen.tlsResumed).to.equal(true);
  });

  it('a torn ticket key file is replaced: one full handshake, then resumption again', async () => {
    const before = connects().length;
    cloud.proc.kill('SIGKILL');
    await cloud.proc.wait();
    writeFileSync(ticketFile(), '{"key": "tor', { mode: 0o600 });
    await cloud.restart();
    const full = await nthConnect(before + 1);
    expect(full.tlsResumed).to.equal(false);
    expect(cloud.proc.hasLog((l) => l.message === 'replacing the TLS session ticket key' && l.reason === 'not a ticket key file')).to.equal(true);
    expect(Buffer.from((JSON.parse(readFileSync(ticketFile(), 'utf8')) as { key: string }).key, 'base64')).to.have.length(48);
    await killAndRestartCloud();
    const resumed = await nthConnect(before + 2);
    expect(resumed.tlsResumed).to.equal(true);
  });
});
