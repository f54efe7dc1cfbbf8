import { expect } from 'chai';
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
