import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { loadCloudConfig } from '../../src/cloud/config.js';
import { tempDir } from '../helpers/procs.js';
import { resolveLocalTargets } from '../../src/connector/targets/target.js';
import type { UemlinkError } from '../../src/common/errors.js';

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
    ['readiness on checks that never run', { stateDir: './s', health: { requireTargets: true, checkIntervalSeconds: 0 } }, 'connector.json: health.requireTargets: needs the target health checks, which health.checkIntervalSeconds: 0 turns off'],
    ['readiness on checks every hour', { stateDir: './s', health: { requireTargets: true, checkIntervalSeconds: 3600 } }, 'ok'],
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

describe('problems found after the schema are reported together', () => {
  it('connector: every missing file and cross-key problem is listed at once, the config key first on each line', () => {
    const cfg = {
      stateDir: './s',
      health: { listen: '0.0.0.0:8080', tls: { certFile: 'page.crt', keyFile: 'page.key' } },
      proxy: { url: 'http://proxy.corp.local:3128', username: 'u', passwordFile: 'proxy.pw' },
      targets: [t({}).targets[0], t({}).targets[0]],
    };
    const lines = load(cfg).split('\n');
    expect(lines).to.have.length(4);
    expect(lines[0]).to.match(/^connector\.json: targets\[1\]\.id: "ws1" is used by another target$/);
    expect(lines[1]).to.match(/^connector\.json: health\.tls\.certFile: cannot read \/.*page\.crt: no such file$/);
    expect(lines[2]).to.match(/^connector\.json: health\.tls\.keyFile: cannot read .*page\.key: no such file$/);
    expect(lines[3]).to.match(/^connector\.json: proxy\.passwordFile: cannot read .*proxy\.pw: no such file$/);
  });

  it('connector: every target whose secret or CA file cannot be read is named, not only the first', () => {
    const dir = tempDir();
    const f = join(dir, 'connector.json');
    const target = (id: string, auth: Record<string, unknown>, tls: Record<string, unknown> = {}) => ({ id, baseUrl: 'https://uem.corp.local', auth, tls });
    writeFileSync(
      f,
      JSON.stringify({
        stateDir: './s',
        targets: [
          target('ws1', { type: 'basic', username: 'u', passwordFile: 'ws1.pw' }),
          target('ok', { type: 'none' }),
          target('epmm', { type: 'apiKey', header: 'X-Key', valueFile: 'epmm.key' }),
          target('hex', { type: 'none' }, { caFile: 'hex-ca.pem' }),
        ],
      }),
    );
    const cfg = loadConnectorConfig(f);
    const err = (() => {
      try {
        resolveLocalTargets(cfg.file, cfg.targets);
        return undefined;
      } catch (e) {
        return e as UemlinkError;
      }
    })();
    expect(err?.code).to.equal('CONFIG_INVALID');
    const lines = err!.message.split('\n');
    expect(lines).to.have.length(3);
    expect(lines[0]).to.match(/^connector\.json: targets\[0\]\.auth\.passwordFile: cannot read .*ws1\.pw: no such file$/);
    expect(lines[1]).to.match(/^connector\.json: targets\[2\]\.auth\.valueFile: cannot read .*epmm\.key: no such file$/);
    expect(lines[2]).to.match(/^connector\.json: targets\[3\]\.tls\.caFile: cannot read .*hex-ca\.pem: no such file$/);
  });

  it('cloud: a missing admin token and unreadable TLS files are listed together', () => {
    const dir = tempDir();
    const f = join(dir, 'cloud.json');
    writeFileSync(f, JSON.stringify({ listen: '127.0.0.1:9443', publicUrl: 'https://relay.example.com', dataDir: './d', adminTokenFile: 'admin.token', tls: { certFile: 'relay.crt', keyFile: 'relay.key' } }));
    let msg = '';
    try {
      loadCloudConfig(f);
    } catch (e) {
      msg = (e as Error).message;
    }
    const lines = msg.split('\n');
    expect(lines).to.have.length(3);
    expect(lines[0]).to.match(/^cloud\.json: adminTokenFile: cannot read .*admin\.token: no such file$/);
    expect(lines[1]).to.match(/^cloud\.json: tls\.certFile: /);
    expect(lines[2]).to.match(/^cloud\.json: tls\.keyFile: /);
  });
});
