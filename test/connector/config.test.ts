import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { loadCloudConfig } from '../../src/cloud/config.js';
import { tempDir } from '../helpers/procs.js';

function load(cfg: unknown, name = 'connector.json'): string {
  const dir = tempDir();
  const f = join(dir, name);
  writeFileSync(f, typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
  try {
    loadConnectorConfig(f);
    return 'ok';
  } catch (e) {
    return (e as Error).message;
  }
}

const t = (o: Record<string, unknown>) => ({ stateDir: './s', targets: [{ id: 'ws1', baseUrl: 'https://uem.corp.local', auth: { type: 'none' }, ...o }] });

describe('connector config errors name the file and the key', () => {
  const cases: Array<[string, unknown, string]> = [
    ['not JSON', '{"stateDir": ', 'connector.json: not valid JSON at line 1'],
    ['missing stateDir', {}, 'connector.json: stateDir: is required'],
    ['http base URL', t({ baseUrl: 'http://uem' }), 'connector.json: targets[0].baseUrl: must be an https URL'],
    ['unknown auth type', t({ auth: { type: 'kerberos' } }), 'connector.json: targets[0].auth'],
    ['basic without password', t({ auth: { type: 'basic', username: 'u' } }), 'connector.json: targets[0].auth.password: is required (or passwordFile)'],
    ['password and passwordFile', t({ auth: { type: 'basic', username: 'u', password: 'p', passwordFile: 'f' } }), 'targets[0].auth.password: set password or passwordFile, not both'],
    ['oauth2 token URL over http', t({ auth: { type: 'oauth2', tokenUrl: 'http://x/token', clientId: 'c', clientSecret: 's' } }), 'targets[0].auth.tokenUrl: must be an https URL'],
    ['bad header name', t({ auth: { type: 'apiKey', header: 'bad header', value: 'v' } }), 'targets[0].auth.header: must be a valid HTTP header name'],
    ['lower-case method', t({ allow: [{ methods: ['get'], pathPrefix: '/x' }] }), 'targets[0].allow[0].methods'],
    ['escaping prefix', t({ allow: [{ methods: '*', pathPrefix: '/x/../y' }] }), 'targets[0].allow[0].pathPrefix'],
    ['typo', { stateDir: './s', targest: [] }, 'connector.json: (top level): unknown key "targest" (did you mean "targets"?)'],
    ['typo in a target\'s auth', t({ auth: { type: 'basic', username: 'u', password: 'p', pasword: 'p' } }), 'targets[0].auth: unknown key "pasword" (did you mean "password"?)'],
    ['wrong case', { stateDir: './s', loglevel: 'info' }, 'unknown key "loglevel" (did you mean "logLevel"?)'],
    ['typo under tunnel', { stateDir: './s', tunnel: { heartbeatSecond: 5 } }, 'tunnel: unknown key "heartbeatSecond" (did you mean "heartbeatSeconds"?)'],
    ['unrelated key', { stateDir: './s', banana: 'yellow' }, 'unknown key "banana" (check the spelling)'],
    ['duplicate ids', { stateDir: './s', targets: [t({}).targets[0], t({}).targets[0]] }, 'targets[1].id: "ws1" is used by another target'],
    ['bad allowedHosts', { stateDir: './s', cloudManagedTargets: { allowedHosts: ['http://x'] } }, 'cloudManagedTargets.allowedHosts[0]'],
    ['pin garbage', t({ tls: { pinSha256: 'abc' } }), 'ok'], // pins are checked when targets are resolved (see relay tests)
  ];
  for (const [name, cfg, msg] of cases) {
    it(name, () => {
      const m = load(cfg);
      if (msg === 'ok') expect(m).to.equal('ok');
      else expect(m).to.contain(msg);
    });
  }

  it('cloud: admin token required, at least 16 characters, and never echoed', () => {
    const dir = tempDir();
    const f = join(dir, 'cloud.json');
    const base = { listen: '127.0.0.1:9443', publicUrl: 'https://relay.example.com', dataDir: './d' };
    const saved = process.env.UEMLINK_ADMIN_TOKEN;
    delete process.env.UEMLINK_ADMIN_TOKEN;
    try {
      writeFileSync(f, JSON.stringify(base));
      expect(() => loadCloudConfig(f)).to.throw(/cloud.json: adminToken: is required/);
      writeFileSync(f, JSON.stringify({ ...base, adminToken: 'short-secret' }));
      const err = (() => {
        try {
          loadCloudConfig(f);
          return '';
        } catch (e) {
          return (e as Error).message;
        }
      })();
      expect(err).to.contain('adminToken: must be at least 16 characters').and.not.contain('short-secret');
      writeFileSync(f, JSON.stringify({ ...base, listen: '9443' }));
      expect(() => loadCloudConfig(f)).to.throw(/listen: must be "HOST:PORT"/);
    } finally {
      if (saved !== undefined) process.env.UEMLINK_ADMIN_TOKEN = saved;
    }
  });
});
