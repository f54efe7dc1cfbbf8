import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTestPki } from '../../src/common/pki.js';
import { maskingIsMoot } from '../../src/transport/ws.js';
import { bypassesProxy, proxyFor } from '../../src/connector/proxy.js';

describe('proxy selection', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('uses proxy.url from the config, never for loopback, and honours noProxy', () => {
    const cfg = { url: 'http://u:p@proxy.corp:3128', noProxy: ['.internal.example', 'relay2.example.com'] };
    expect(proxyFor('wss://relay.example.com/api/v1/tunnel', cfg)).to.equal(cfg.url);
    expect(proxyFor('ws://127.0.0.1:9443/x', cfg)).to.equal(undefined);
    expect(proxyFor('ws://[::1]:9443/x', cfg)).to.equal(undefined);
    expect(proxyFor('ws://localhost:9443/x', cfg)).to.equal(undefined);
    expect(proxyFor('wss://a.internal.example/x', cfg)).to.equal(undefined);
    expect(proxyFor('wss://relay2.example.com/x', cfg)).to.equal(undefined);
  });

  it('falls back to HTTPS_PROXY / HTTP_PROXY and NO_PROXY from the environment (either case)', () => {
    process.env.https_proxy = 'http://envproxy:8080';
    process.env.HTTP_PROXY = 'http://plainproxy:8080';
    process.env.NO_PROXY = 'skip.example.com, .corp.local';
    expect(proxyFor('wss://relay.example.com/x', undefined)).to.equal('http://envproxy:8080');
    expect(proxyFor('ws://relay.example.com/x', undefined)).to.equal('http://plainproxy:8080');
    expect(proxyFor('wss://skip.example.com/x', undefined)).to.equal(undefined);
    expect(proxyFor('wss://uem.corp.local/x', undefined)).to.equal(undefined);
    delete process.env.https_proxy;
    delete process.env.HTTP_PROXY;
    expect(proxyFor('wss://relay.example.com/x', undefined)).to.equal(undefined);
  });

  it('NO_PROXY matching follows curl: *, exact, suffixes, IPs; no partial label matches', () => {
    expect(bypassesProxy('anything', ['*'])).to.equal(true);
    expect(bypassesProxy('a.b.example.com', ['example.com'])).to.equal(true);
    expect(bypassesProxy('notexample.com', ['example.com'])).to.equal(false);
    expect(bypassesProxy('10.1.2.3', ['10.1.2.3'])).to.equal(true);
    expect(bypassesProxy('10.1.2.4', ['10.1.2.3'])).to.equal(false);
    expect(bypassesProxy('host.example.com', ['host.example.com:8443'])).to.equal(true);
  });
});

describe('NO_PROXY and loopback edges (found in review)', () => {
  it('IPv6 entries, bare or in brackets, with or without a port, match the same address in any spelling', () => {
    expect(bypassesProxy('[fd00::10]', ['fd00::10'])).to.equal(true);
    expect(bypassesProxy('[fd00::10]', ['[fd00::10]'])).to.equal(true);
    expect(bypassesProxy('[fd00::10]', ['[fd00::10]:443'])).to.equal(true);
    expect(bypassesProxy('[2001:db8::1]', ['2001:0db8:0:0:0:0:0:1'])).to.equal(true);
    // "fd00::1:10" is an address, not "fd00::1" with a port.
    expect(bypassesProxy('[fd00::1]', ['fd00::1:10'])).to.equal(false);
  });

  it('CIDR entries match addresses inside them only', () => {
    expect(bypassesProxy('10.1.2.3', ['10.0.0.0/8'])).to.equal(true);
    expect(bypassesProxy('11.1.2.3', ['10.0.0.0/8'])).to.equal(false);
    expect(bypassesProxy('[fd00::5]', ['fd00::/8'])).to.equal(true);
    expect(bypassesProxy('relay.example.com', ['10.0.0.0/8'])).to.equal(false);
  });

  it('a host NAME starting with "127." is not loopback: it goes through the proxy, and ws:// keeps masking', () => {
    const cfg = { url: 'http://proxy.corp:3128', noProxy: [] };
    expect(proxyFor('wss://127.attacker.example/api/v1/tunnel', cfg)).to.equal(cfg.url);
    expect(proxyFor('wss://127.0.0.1:9443/api/v1/tunnel', cfg)).to.equal(undefined);
    expect(maskingIsMoot('ws://127.relay.example.com/api/v1/tunnel')).to.equal(false);
    expect(maskingIsMoot('ws://127.0.0.1:9443/api/v1/tunnel')).to.equal(true);
  });
});

/**
 * cloud.caFile is trusted on top of the system CAs, also for an https:// proxy's own certificate
 * (found in review: given as `ca` it replaced them). The system store is NODE_EXTRA_CA_CERTS in a
 * child process: Node adds those to its default roots, and an explicit `ca` dropped them too.
 */
describe('https proxy trust with cloud.caFile', () => {
  it('an https:// proxy trusted by the system roots still works when cloud.caFile is set', () => {
    const proxyPki = createTestPki(['localhost', '127.0.0.1']); // "system-trusted" proxy
    const cloudPki = createTestPki(['cloud.example']); // the extra CA in cloud.caFile
    const dir = mkdtempSync(join(tmpdir(), 'review-pca-'));
    writeFileSync(join(dir, 'sysca.pem'), proxyPki.caCertPem);
    writeFileSync(join(dir, 'key.pem'), proxyPki.keyPem);
    writeFileSync(join(dir, 'cert.pem'), proxyPki.certPem);
    writeFileSync(join(dir, 'cloudca.pem'), cloudPki.caCertPem);
    const proxyMod = resolve('dist/src/connector/proxy.js');
    const script = `
      import { createServer } from 'node:https';
      import { readFileSync } from 'node:fs';
      import { request } from 'node:https';
      const { proxyAgent } = await import(${JSON.stringify(proxyMod)});
      const d = ${JSON.stringify(dir)};
      const srv = createServer({ key: readFileSync(d + '/key.pem'), cert: readFileSync(d + '/cert.pem') });
      srv.on('connect', (req, sock) => { sock.end('HTTP/1.1 502 Bad Gateway\\r\\n\\r\\n'); });
      await new Promise((r) => srv.listen(0, '127.0.0.1', r));
      const url = 'https://localhost:' + srv.address().port;
      const attempt = (ca) => new Promise((res) => {
        const rq = request('https://cloud.example/x', { agent: proxyAgent(url, ca) }, () => res('ok'));
        rq.on('error', (e) => res(e.code || e.message));
        rq.end();
      });
      const without = await attempt(undefined);
      const withCa = await attempt([readFileSync(d + '/cloudca.pem', 'utf8')]);
      process.stdout.write(JSON.stringify({ without, withCa }) + '\\n');
      srv.close();
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'sysca.pem') }, encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { without: string; withCa: string };
    // Without the extra CA the proxy's TLS is accepted (the CONNECT then fails with 502: a socket
    // error, not a TLS one). With the extra CA, it must be the same.
    expect(r.without, 'the proxy is trusted through the system store').to.not.match(/CERT|SELF_SIGNED|UNABLE/);
    expect(r.withCa).to.equal(r.without);
  });
});
