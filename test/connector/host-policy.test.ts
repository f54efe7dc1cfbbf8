import { expect } from 'chai';
import { hostAllowed, isHostPattern } from '../../src/connector/host-policy.js';

describe('cloud-managed target host policy', () => {
  const allowed = ['uem.corp.local', '*.corp.local', '10.0.0.0/8', 'fd00::/8', '192.0.2.7'];
  it('matches exact names, subdomain wildcards, CIDR blocks and addresses', () => {
    expect(hostAllowed('uem.corp.local', allowed)).to.equal(true);
    expect(hostAllowed('UEM.Corp.Local.', allowed)).to.equal(true);
    expect(hostAllowed('a.b.corp.local', allowed)).to.equal(true);
    expect(hostAllowed('10.20.30.40', allowed)).to.equal(true);
    expect(hostAllowed('[fd00::1]', allowed)).to.equal(true);
    expect(hostAllowed('192.0.2.7', allowed)).to.equal(true);
  });
  it('refuses everything else, including look-alikes', () => {
    expect(hostAllowed('corp.local', ['*.corp.local'])).to.equal(false);
    expect(hostAllowed('evilcorp.local', allowed)).to.equal(false);
    expect(hostAllowed('uem.corp.local.evil.com', allowed)).to.equal(false);
    expect(hostAllowed('11.0.0.1', allowed)).to.equal(false);
    expect(hostAllowed('192.0.2.8', allowed)).to.equal(false);
    expect(hostAllowed('anything', [])).to.equal(false);
    // CIDR rules never match host names (no DNS at decision time).
    expect(hostAllowed('10.example.com', ['10.0.0.0/8'])).to.equal(false);
  });
  it('validates patterns', () => {
    for (const p of ['uem.corp.local', '*.corp.local', '10.0.0.0/8', '::1', 'fd00::/8']) expect(isHostPattern(p), p).to.equal(true);
    for (const p of ['*', '*.', 'a b', '10.0.0.0/33', 'http://x', '*.*.x', '10.0.0.0/x']) expect(isHostPattern(p), p).to.equal(false);
    for (const p of ['uem.corp:443', '*.corp.local:8443', '10.0.0.0/8:443', '192.0.2.7:1', '[::1]:443', '[fd00::/8]:65535', '[fd00::1]']) expect(isHostPattern(p), p).to.equal(true);
    for (const p of ['uem.corp:0', 'uem.corp:65536', 'uem.corp:', 'uem.corp:x', '[uem.corp]:443', '[::1', '[::1]443', 'fd00::1:443x']) expect(isHostPattern(p), p).to.equal(false);
  });
  it('a pattern with a port allows that port only; one without allows any; a host of unknown port matches only port-less patterns', () => {
    const ports = ['uem.corp:443', '*.lab.corp:8443', '10.0.0.0/8:443', '[fd00::/8]:443', 'any.corp'];
    expect(hostAllowed('uem.corp', ports, 443)).to.equal(true);
    expect(hostAllowed('uem.corp', ports, 8443)).to.equal(false);
    expect(hostAllowed('uem.corp', ports)).to.equal(false);
    expect(hostAllowed('a.lab.corp', ports, 8443)).to.equal(true);
    expect(hostAllowed('a.lab.corp', ports, 443)).to.equal(false);
    expect(hostAllowed('10.1.2.3', ports, 443)).to.equal(true);
    expect(hostAllowed('10.1.2.3', ports, 6379)).to.equal(false);
    expect(hostAllowed('[fd00::5]', ports, 443)).to.equal(true);
    expect(hostAllowed('[fd00::5]', ports, 80)).to.equal(false);
    expect(hostAllowed('any.corp', ports, 6379)).to.equal(true);
    expect(hostAllowed('any.corp', ports)).to.equal(true);
  });
});
