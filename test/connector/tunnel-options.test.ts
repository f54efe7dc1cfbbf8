/**
 * The dial options the daemon builds for every dial: the identity's key is parsed once (a PEM passed
 * to crypto.sign is parsed again on each signature), and a renewed identity brings its new key.
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../../src/common/clock.js';
import { generateRsaKeyPair } from '../../src/common/pki.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { buildTunnelOptions } from '../../src/connector/daemon.js';
import type { Identity } from '../../src/connector/state.js';
import { tempDir } from '../helpers/procs.js';

describe('connector: dial options', () => {
  it('parse the identity key once: every dial gets the same KeyObject, a renewed identity its new key', async () => {
    const dir = tempDir('uemlink-dialopts-');
    writeFileSync(join(dir, 'connector.json'), JSON.stringify({ stateDir: './state', targets: [] }));
    const cfg = loadConnectorConfig(join(dir, 'connector.json'));
    const id: Identity = {
      connectorId: 'c-1',
      tenant: 'acme',
      group: 'default',
      cloudUrl: 'https://relay.example.com',
      certificate: '',
      caCertificate: '',
      pairedAt: '2026-11-24T00:00:00.000Z',
      keyFile: 'connector.key',
      privateKeyPem: generateRsaKeyPair(2048).privateKeyPem,
    };
    const a = await buildTunnelOptions(cfg, id, [], systemClock);
    const b = await buildTunnelOptions(cfg, id, [], systemClock);
    expect(a.privateKey.type).to.equal('private');
    expect(b.privateKey).to.equal(a.privateKey);
    const renewed: Identity = { ...id, privateKeyPem: generateRsaKeyPair(2048).privateKeyPem };
    const c = await buildTunnelOptions(cfg, renewed, [], systemClock);
    expect(c.privateKey).to.not.equal(a.privateKey);
    expect(c.privateKey.export({ format: 'pem', type: 'pkcs8' })).to.equal(renewed.privateKeyPem);
  });
});
