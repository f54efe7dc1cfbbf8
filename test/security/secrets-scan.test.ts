/**
 * Issue 7, secrets: plant a unique value in every secret-bearing field on both sides (connector
 * targets of every auth type, inline and from files; the proxy password; the local admin password;
 * the cloud admin token; pairing tokens; tenant API keys; cloud-managed target definitions; the
 * credentials of integrations created through the API), drive traffic that succeeds and fails in
 * every way we know (wrong password, OAuth invalid_client, unreachable UEM, diagnose, config errors,
 * forged tokens), then collect everything an operator, a support engineer or an API client can see
 * and assert that none of the planted values appears — raw, URL-encoded, JSON-escaped or in base64
 * (any alignment, also inside `Basic user:password`). Files that hold secrets must be 0600 in 0700
 * directories, and secrets at rest must be sealed (never in clear in a state file).
 *
 * Real processes (`uemlink cloud run`, `uemlink connector run`, the CLI), a real OAuth2 server
 * (oauth2-mock-server), an HTTPS upstream and the Workspace ONE simulator.
 */
import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, rmSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { OAuth2Server } from 'oauth2-mock-server';
import tar from 'tar-stream';
import { createTestPki } from '../../src/common/pki.js';
import { startSimulator, type RunningSimulator } from '../../src/uem/simulator/server.js';
import { cli, freePort, makeConnector, sleep, startCloud, tempDir, until, type Cloud, type Connector } from '../helpers/procs.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const hex = (): string => randomBytes(8).toString('hex');
/** A unique planted value. `+` and `=` make URL and form encodings differ from the raw form. */
const plant = (field: string): string => `S3CRET-${field}-${hex()}+=`;

/** Every planted value, by the field it went into. */
const S = {
  cloudAdminToken: plant('cloudAdminToken'),
  wrongAdminToken: plant('wrongAdminToken'),
  shortAdminToken: `S3CRET-${randomBytes(3).toString('hex')}`, // < 16 chars: a config error
  publicUrlPassword: `S3CRETpubUrl${hex()}`, // in a URL: letters and digits only
  basicPassword: plant('basicPassword'),
  basicApiKey: plant('basicApiKey'),
  basicPasswordFile: plant('basicPasswordFile'),
  basicApiKeyFile: plant('basicApiKeyFile'),
  wrongUemPassword: plant('wrongUemPassword'),
  unreachablePassword: plant('unreachablePassword'),
  apiKeyValue: plant('apiKeyValue'),
  apiKeyValueFile: plant('apiKeyValueFile'),
  oauthSecret: plant('oauthSecret'),
  oauthSecretFile: plant('oauthSecretFile'),
  oauthBasicSecret: plant('oauthBasicSecret'),
  oauthWrongSecret: plant('oauthWrongSecret'),
  proxyUrlPassword: `S3CRETproxyUrl${hex()}`,
  proxyPasswordFile: plant('proxyPasswordFile'),
  healthAdminPassword: plant('healthAdminPassword'),
  wrongHealthPassword: plant('wrongHealthPassword'),
  managedPassword: plant('managedPassword'),
  managedApiKey: plant('managedApiKey'),
  managedClientSecret: plant('managedClientSecret'),
  pendingPassword: plant('pendingPassword'),
  badDefinitionPassword: plant('badDefinitionPassword'),
  badDefinitionUrlPassword: `S3CRETbadDefUrl${hex()}`,
  intPassword: plant('intPassword'),
  intApiKey: plant('intApiKey'),
  intClientSecret: plant('intClientSecret'),
  intWrongClientSecret: plant('intWrongClientSecret'),
  intPushPassword: plant('intPushPassword'),
  intPushApiKey: plant('intPushApiKey'),
  intBadUrlPassword: `S3CRETintUrl${hex()}`,
  cfgCloudUrlPassword: `S3CRETcfgCloudUrl${hex()}`,
  cfgBaseUrlPassword: `S3CRETcfgBaseUrl${hex()}`,
  cfgTypoPassword: plant('cfgTypoPassword'),
  cfgBothPassword: plant('cfgBothPassword'),
  forgedTenantKeySecret: randomBytes(32).toString('base64url').slice(0, 43),
  forgedPairingSecret: randomBytes(32).toString('base64url').slice(0, 43),
};
/** Values the system made (pairing tokens, tenant API keys, private keys): added as they appear. */
const generated: Record<string, string> = {};
const USERS: Record<string, string> = { basicPassword: 'svc-inline', basicPasswordFile: 'svc-file', wrongUemPassword: 'svc-wrong', unreachablePassword: 'svc-down', managedPassword: 'svc-managed', intPassword: 'svc-int', intPushPassword: 'svc-push' };

/** The forms in which a secret could leak: raw, its random core, URL/JSON encodings, base64 at every alignment. */
function forms(name: string, value: string): Array<[string, string]> {
  const out: Array<[string, string]> = [[`${name}`, value]];
  const core = /-([0-9a-f]{16})\+=$/.exec(value)?.[1];
  if (core) out.push([`${name} (random part)`, core]);
  if (encodeURIComponent(value) !== value) out.push([`${name} (URL-encoded)`, encodeURIComponent(value)]);
  const form = new URLSearchParams({ x: value }).toString().slice(2);
  if (form !== value) out.push([`${name} (form-encoded)`, form]);
  const json = JSON.stringify(value).slice(1, -1);
  if (json !== value) out.push([`${name} (JSON)`, json]);
  const b = Buffer.from(value);
  for (let k = 0; k < 3; k++) {
    // Base64 of the secret starting at byte offset k of a 3-byte group: keep only the characters of
    // groups made of secret bytes alone, which any base64 text containing the secret there contains.
    const enc = Buffer.concat([Buffer.alloc(k, 0x41), b]).toString('base64');
    const from = k === 0 ? 0 : 4;
    const to = Math.floor((k + b.length) / 3) * 4;
    const inner = enc.slice(from, to);
    if (inner.length >= 16) {
      out.push([`${name} (base64 +${k})`, inner]);
      out.push([`${name} (base64url +${k})`, inner.replace(/\+/g, '-').replace(/\//g, '_')]);
    }
  }
  const user = USERS[name];
  if (user) out.push([`${name} (Basic ${user}:…)`, Buffer.from(`${user}:${value}`).toString('base64')]);
  return out;
}

interface Observed {
  source: string;
  text: string;
}

function gunzipTar(buf: Buffer): Promise<Array<{ name: string; text: string; mode: number }>> {
  return new Promise((resolve, reject) => {
    const out: Array<{ name: string; text: string; mode: number }> = [];
    const ex = tar.extract();
    ex.on('entry', (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        out.push({ name: h.name, text: Buffer.concat(chunks).toString('utf8'), mode: h.mode ?? 0 });
        next();
      });
      stream.resume();
    });
    ex.on('finish', () => resolve(out));
    ex.on('error', reject);
    ex.end(gunzipSync(buf));
  });
}

/** Every regular file under `dir` (recursively). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function dirsUnder(dir: string): string[] {
  const out = [dir];
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...dirsUnder(join(dir, e.name)));
  return out;
}

describe('security: planted secrets never leave where they belong', function () {
  this.timeout(240_000);
  const observed: Observed[] = [];
  const see = (source: string, text: string | undefined): void => void (text !== undefined && observed.push({ source, text }));
  let cloud: Cloud;
  let conn: Connector;
  let up: Upstream;
  let oauth: OAuth2Server;
  let sim: RunningSimulator;
  let connectorId = '';
  let page = '';
  let cloudDir = '';
  let bundleFile = '';
  const throwaway: Connector[] = [];
  const ownDirs: string[] = [];

  /** An API call whose whole answer (status, headers, body) is observed. */
  /** `observe: false` only for the answers that hand out a new credential once, by design. */
  async function api(method: string, path: string, body?: unknown, token = S.cloudAdminToken, observe = true): Promise<{ status: number; body: any; text: string }> {
    const res = await fetch(`${cloud.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (observe) see(`cloud API ${method} ${path} -> ${res.status}`, `${JSON.stringify([...res.headers])}\n${text}`);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text };
  }

  async function relay(path: string, token = S.cloudAdminToken, init: RequestInit = {}): Promise<number> {
    const res = await fetch(`${cloud.url}/api/v1/relay/${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } });
    const text = await res.text();
    see(`relay ${init.method ?? 'GET'} ${path} -> ${res.status}`, `${JSON.stringify([...res.headers])}\n${text}`);
    return res.status;
  }

  async function pageGet(path: string, cookie = ''): Promise<{ status: number; text: string; cookies: string[] }> {
    const res = await fetch(`${page}${path}`, { headers: cookie ? { cookie } : {} });
    const text = await res.text();
    see(`local page GET ${path} -> ${res.status}`, `${JSON.stringify([...res.headers])}\n${text}`);
    return { status: res.status, text, cookies: res.headers.getSetCookie() };
  }

  async function pagePost(path: string, form: Record<string, string>, cookie: string): Promise<Response> {
    return fetch(`${page}${path}`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
  }

  before(async () => {
    // ---- the UEM side: an HTTPS upstream that checks credentials, a real OAuth2 server, a WS1 simulator
    const pki = createTestPki(['localhost', '127.0.0.1']);
    const pkiDir = tempDir('uemlink-sec-pki-');
    ownDirs.push(pkiDir);
    writeFileSync(join(pkiDir, 'k.pem'), pki.keyPem);
    writeFileSync(join(pkiDir, 'c.pem'), pki.certPem);
    oauth = new OAuth2Server(join(pkiDir, 'k.pem'), join(pkiDir, 'c.pem'));
    await oauth.issuer.keys.generate('RS256');
    oauth.service.on('beforeTokenSigning', (token: { payload: Record<string, unknown> }) => {
      token.payload.jti = randomUUID();
    });
    const goodSecrets = new Set([S.oauthSecret, S.oauthSecretFile, S.oauthBasicSecret, S.managedClientSecret]);
    oauth.service.on('beforeResponse', (resp: { body: Record<string, unknown>; statusCode: number }, req: { body?: Record<string, string>; headers?: Record<string, string> }) => {
      let secret = req.body?.client_secret;
      const basic = /^Basic (.+)$/.exec(req.headers?.authorization ?? '')?.[1];
      if (basic) secret = decodeURIComponent(Buffer.from(basic, 'base64').toString().split(':').slice(1).join(':'));
      if (!secret || !goodSecrets.has(secret)) {
        resp.statusCode = 401;
        resp.body = { error: 'invalid_client', error_description: 'client authentication failed' };
      }
    });
    await oauth.start(0, '127.0.0.1');
    const tokenUrl = `https://127.0.0.1:${oauth.address().port}/token`;

    const basicOf = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
    const expected: Record<string, (h: Record<string, string | string[] | undefined>) => boolean> = {
      'basic-inline': (h) => h.authorization === basicOf(USERS.basicPassword!, S.basicPassword) && h['aw-tenant-code'] === S.basicApiKey,
      'basic-file': (h) => h.authorization === basicOf(USERS.basicPasswordFile!, S.basicPasswordFile) && h['aw-tenant-code'] === S.basicApiKeyFile,
      'wrong-pw': () => false,
      'apikey-inline': (h) => h['x-api-key'] === `Key ${S.apiKeyValue}`,
      'apikey-file': (h) => h.authorization === S.apiKeyValueFile,
      managed: (h) => h.authorization === basicOf(USERS.managedPassword!, S.managedPassword) && h['aw-tenant-code'] === S.managedApiKey,
      oauth: (h) => /^Bearer .{20,}/.test(String(h.authorization)),
    };
    up = await startUpstream({
      pki,
      handler: async (req, res) => {
        for await (const _ of req) {
          /* drain */
        }
        const first = (req.url ?? '/').split('/')[1] ?? '';
        const check = expected[first.startsWith('oauth') || first === 'managed-oauth' ? 'oauth' : first];
        if (check && !check(req.headers)) {
          // Like a real UEM: a 401 that names nothing secret.
          res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="uem"' });
          res.end('{"errorCode":1005,"message":"User credentials are invalid"}');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: true })); // never echoes the request (its query may carry a secret)
      },
    });

    const simDir = tempDir('uemlink-sec-sim-');
    ownDirs.push(simDir);
    sim = await startSimulator({
      vendor: 'workspace-one',
      listen: { host: '127.0.0.1', port: 0 },
      stateDir: simDir,
      devices: 5,
      credentials: { username: USERS.intPassword!, password: S.intPassword, apiKey: S.intApiKey, clientId: 'uemlink-int', clientSecret: S.intClientSecret },
    });

    // ---- the cloud: admin token from a file
    cloudDir = tempDir('uemlink-sec-cloud-');
    writeFileSync(join(cloudDir, 'admin.token'), `${S.cloudAdminToken}\n`, { mode: 0o600 });
    cloud = await startCloud({
      dir: cloudDir,
      extra: { adminToken: undefined, adminTokenFile: 'admin.token', integrations: { retryBaseMs: 10, firstRunWithinSeconds: 0 }, relay: { timeoutSeconds: 10 } },
    });

    // ---- the connector: every auth type, inline and from files
    const dir = tempDir('uemlink-sec-conn-');
    const files: Record<string, string> = {
      'basic.pass': `${S.basicPasswordFile}\n`,
      'basic.key': S.basicApiKeyFile,
      'apikey.value': `${S.apiKeyValueFile}\r\n`,
      'oauth.secret': S.oauthSecretFile,
      'proxy.pass': S.proxyPasswordFile,
      'admin.pass': `${S.healthAdminPassword}\n`,
      'uem-ca.pem': up.caPem,
    };
    for (const [n, v] of Object.entries(files)) writeFileSync(join(dir, n), v, { mode: 0o600 });
    const base = up.baseUrl;
    const tls = { caFile: 'uem-ca.pem' };
    conn = await makeConnector({
      dir,
      config: {
        logFile: './logs/connector.log',
        audit: { file: './audit/audit.log' },
        proxy: { url: `http://proxyuser:${S.proxyUrlPassword}@127.0.0.1:1`, username: 'proxyuser', passwordFile: 'proxy.pass', noProxy: ['*'] },
        health: { adminPasswordFile: 'admin.pass', checkIntervalSeconds: 5 },
        cloudManagedTargets: { allowedHosts: ['127.0.0.1'] },
        targets: [
          { id: 'basic-inline', baseUrl: `${base}/basic-inline`, auth: { type: 'basic', username: USERS.basicPassword, password: S.basicPassword, apiKey: S.basicApiKey }, tls },
          { id: 'basic-file', baseUrl: `${base}/basic-file`, auth: { type: 'basic', username: USERS.basicPasswordFile, passwordFile: 'basic.pass', apiKeyFile: 'basic.key' }, tls },
          { id: 'wrong-pw', baseUrl: `${base}/wrong-pw`, auth: { type: 'basic', username: USERS.wrongUemPassword, password: S.wrongUemPassword }, tls },
          { id: 'down', baseUrl: `https://127.0.0.1:${await freePort()}/api`, auth: { type: 'basic', username: USERS.unreachablePassword, password: S.unreachablePassword } },
          { id: 'apikey-inline', baseUrl: `${base}/apikey-inline`, auth: { type: 'apiKey', header: 'X-Api-Key', prefix: 'Key ', value: S.apiKeyValue }, tls },
          { id: 'apikey-file', baseUrl: `${base}/apikey-file`, auth: { type: 'apiKey', header: 'Authorization', valueFile: 'apikey.value' }, tls },
          { id: 'oauth', baseUrl: `${base}/oauth`, auth: { type: 'oauth2', tokenUrl, clientId: 'uemlink', clientSecret: S.oauthSecret, scope: 'api' }, tls },
          { id: 'oauth-file', baseUrl: `${base}/oauth-file`, auth: { type: 'oauth2', tokenUrl, clientId: 'uemlink', clientSecretFile: 'oauth.secret' }, tls },
          { id: 'oauth-basic', baseUrl: `${base}/oauth-basic`, auth: { type: 'oauth2', tokenUrl, clientId: 'uemlink', clientSecret: S.oauthBasicSecret, clientAuth: 'basic' }, tls },
          { id: 'oauth-bad', baseUrl: `${base}/oauth-bad`, auth: { type: 'oauth2', tokenUrl, clientId: 'uemlink', clientSecret: S.oauthWrongSecret }, tls },
        ],
      },
    });
    page = `http://${(JSON.parse(readFileSync(conn.configFile, 'utf8')) as { health: { listen: string } }).health.listen}`;

    // ---- pairing: a forged token first (wrong secret), then the real one
    const issued = await api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' }, S.cloudAdminToken, false);
    expect(issued.status).to.equal(201);
    generated.pairingToken = issued.body.token as string;
    const forgedToken = generated.pairingToken.split('.').slice(0, 3).join('.') + `.${S.forgedPairingSecret}`;
    const forged = await makeConnector({ config: {} });
    throwaway.push(forged);
    const fp = await forged.pair(forgedToken);
    expect(fp.code).to.not.equal(0);
    see('connector pair (forged token) stdout+stderr', fp.stdout + fp.stderr);
    const r = await conn.pair(generated.pairingToken);
    expect(r.code, r.stderr).to.equal(0);
    see('connector pair stdout+stderr', r.stdout + r.stderr);
    connectorId = r.stdout.trim();
    generated.privateKey = readFileSync(join(dir, 'state', `${connectorId}.key`), 'utf8');
    await conn.start();
    await until(async () => (await api('GET', `/api/v1/connectors/${connectorId}`)).body?.connected, 20_000, 'connector connected');

    // ---- tenant API keys: one used, one revoked and then used, one forged
    const key = await api('POST', '/api/v1/tenants/acme/api-keys', { label: 'scan' }, S.cloudAdminToken, false);
    generated.tenantKey = key.body.key as string;
    const key2 = await api('POST', '/api/v1/tenants/acme/api-keys', { label: 'revoked' }, S.cloudAdminToken, false);
    generated.revokedTenantKey = key2.body.key as string;
    expect((await api('DELETE', `/api/v1/tenants/acme/api-keys/${key2.body.id as string}`)).status).to.equal(204);

    // ---- cloud-managed targets (secrets inline, pushed to the connector)
    const mt = await api('PUT', '/api/v1/tenants/acme/managed-targets/managed', { baseUrl: `${base}/managed`, auth: { type: 'basic', username: USERS.managedPassword, password: S.managedPassword, apiKey: S.managedApiKey }, tls: { ca: up.caPem } }, generated.tenantKey);
    expect(mt.status, mt.text).to.equal(200);
    const mo = await api('PUT', '/api/v1/tenants/acme/managed-targets/managed-oauth', { baseUrl: `${base}/managed-oauth`, auth: { type: 'oauth2', tokenUrl, clientId: 'managed', clientSecret: S.managedClientSecret }, tls: { ca: up.caPem } });
    expect(mo.status, mo.text).to.equal(200);
    const mp = await api('PUT', '/api/v1/tenants/acme/managed-targets/pending', { baseUrl: 'https://uem.pending.example/API', auth: { type: 'basic', username: 'svc-pending', password: S.pendingPassword } });
    expect(mp.status, mp.text).to.equal(200);
    // Refused definitions: a secret must not be echoed in the 400.
    const bad1 = await api('PUT', '/api/v1/tenants/acme/managed-targets/bad1', { baseUrl: `https://u:${S.badDefinitionUrlPassword}@uem.corp.example/API`, auth: { type: 'none' } });
    expect(bad1.status).to.equal(400);
    const bad2 = await api('PUT', '/api/v1/tenants/acme/managed-targets/bad2', { baseUrl: `${base}/x`, auth: { type: 'basic', username: 'u', password: S.badDefinitionPassword, passwordFile: '/etc/passwd' } });
    expect(bad2.status).to.equal(400);
    const bad3 = await api('PUT', '/api/v1/tenants/acme/managed-targets/bad3', { baseUrl: `${base}/x`, auth: { type: 'basic', username: 'u', pasword: S.badDefinitionPassword } });
    expect(bad3.status).to.equal(400);

    // ---- integrations through the API: direct basic, direct OAuth (right and wrong), pushed to the connector
    const server = sim.url;
    const created: string[] = [];
    for (const [name, body] of [
      ['direct basic', { vendor: 'workspace-one', displayName: 'ws1 basic', serverAddress: server, selfSignedCertPem: sim.caPem, route: { via: 'direct' }, auth: { type: 'basic', username: USERS.intPassword, password: S.intPassword, apiKey: S.intApiKey } }],
      ['direct oauth', { vendor: 'workspace-one', displayName: 'ws1 oauth', serverAddress: server, selfSignedCertPem: sim.caPem, route: { via: 'direct' }, auth: { type: 'oauth2', clientId: 'uemlink-int', clientSecret: S.intClientSecret, tokenUrl: sim.credentials.tokenUrl } }],
      ['direct oauth (wrong secret)', { vendor: 'workspace-one', displayName: 'ws1 oauth bad', serverAddress: server, selfSignedCertPem: sim.caPem, route: { via: 'direct' }, auth: { type: 'oauth2', clientId: 'uemlink-int', clientSecret: S.intWrongClientSecret, tokenUrl: sim.credentials.tokenUrl } }],
      ['pushed', { vendor: 'workspace-one', displayName: 'ws1 pushed', serverAddress: server, selfSignedCertPem: sim.caPem, route: { via: 'connector', group: 'default', push: true }, auth: { type: 'basic', username: USERS.intPushPassword, password: S.intPushPassword, apiKey: S.intPushApiKey } }],
    ] as const) {
      const c = await api('POST', '/api/v1/tenants/acme/integrations', body);
      expect(c.status, `${name}: ${c.text}`).to.equal(201);
      created.push(c.body.id as string);
    }
    const badInt = await api('POST', '/api/v1/tenants/acme/integrations', { vendor: 'workspace-one', displayName: 'bad', serverAddress: `https://u:${S.intBadUrlPassword}@uem.example`, route: { via: 'direct' }, auth: { type: 'basic', username: 'u', password: S.intBadUrlPassword, apiKey: 'x' } });
    expect(badInt.status).to.equal(400);

    // ---- traffic: success and every failure
    await until(async () => (await api('GET', '/api/v1/connectors/' + connectorId)).body?.targets?.includes('managed'), 15_000, 'the managed target to be active');
    for (const t of ['basic-inline', 'basic-file', 'apikey-inline', 'apikey-file', 'oauth', 'oauth-file', 'oauth-basic', 'managed', 'managed-oauth']) {
      expect(await relay(`acme/${t}/devices?page=0`), t).to.equal(200);
    }
    expect(await relay('acme/basic-inline/devices', generated.tenantKey, { method: 'POST', body: '{"q":1}', headers: { 'content-type': 'application/json' } })).to.equal(200);
    expect(await relay('acme/wrong-pw/devices')).to.equal(401);
    expect(await relay('acme/oauth-bad/devices')).to.equal(502);
    expect(await relay('acme/down/devices')).to.equal(502);
    expect(await relay('acme/pending/devices')).to.be.oneOf([404, 503]);
    expect(await relay('acme/basic-inline/x', S.wrongAdminToken)).to.equal(401);
    expect(await relay('acme/basic-inline/x', generated.revokedTenantKey)).to.equal(401);
    expect(await relay('acme/basic-inline/x', `ulak1.AAAAAAAAAAAA.${S.forgedTenantKeySecret}`)).to.equal(401);
    expect(await relay(`acme/basic-inline/x?password=${encodeURIComponent(S.basicPassword)}&access_token=${encodeURIComponent(S.oauthSecret)}`)).to.equal(200);
    expect((await api('GET', '/api/v1/connectors', undefined, S.wrongAdminToken)).status).to.equal(401);
    expect((await api('GET', '/api/v1/connectors', undefined, generated.tenantKey)).status).to.equal(401);

    // Integrations: syncs, verify, status, groups, reads.
    for (const id of created) {
      await api('POST', `/api/v1/tenants/acme/integrations/${id}/sync?wait=1`);
      await api('POST', `/api/v1/tenants/acme/integrations/${id}/verify`);
      await api('GET', `/api/v1/tenants/acme/integrations/${id}`);
      await api('GET', `/api/v1/tenants/acme/integrations/${id}/status`);
      await api('GET', `/api/v1/tenants/acme/integrations/${id}/groups`);
    }
    await api('GET', '/api/v1/tenants/acme/integrations');
    await api('GET', '/api/v1/tenants/acme/integrations', undefined, generated.tenantKey);
    await api('GET', '/api/v1/tenants/acme/managed-targets');
    await api('GET', '/api/v1/connectors');
    await api('GET', '/api/v1/tenants/acme/devices?pageSize=5');

    // ---- the local page: wrong password, diagnose, reject the pending target, a support bundle
    await until(async () => {
      const s = JSON.parse((await pageGet('/api/status')).text) as { targets: Array<{ id: string; reachable: boolean | null }> };
      return s.targets.find((t) => t.id === 'down')?.reachable === false && s.targets.find((t) => t.id === 'oauth-bad')?.reachable !== null;
    }, 20_000, 'health checks of every target');
    const home = await pageGet('/');
    const csrf = /name="csrf" value="([^"]+)"/.exec(home.text)?.[1] ?? '';
    const cookie = home.cookies.map((c) => c.split(';')[0]).join('; ');
    expect(csrf).to.have.length(43);
    const wrong = await pagePost('/actions/support-bundle', { password: S.wrongHealthPassword, csrf }, cookie);
    expect(wrong.status).to.equal(401);
    see('local page wrong password', await wrong.text());
    const diag = await pagePost('/actions/diagnose', { csrf }, cookie);
    see('local page POST /actions/diagnose', await diag.text());
    const rej = await pagePost('/actions/targets/pending/reject', { password: S.healthAdminPassword, csrf }, cookie);
    expect(rej.status).to.equal(303);
    const pageBundle = await pagePost('/actions/support-bundle', { password: S.healthAdminPassword, csrf }, cookie);
    expect(pageBundle.status).to.equal(200);
    for (const e of await gunzipTar(Buffer.from(await pageBundle.arrayBuffer()))) see(`support bundle (page) ${e.name}`, e.text);

    // ---- the CLI against the running connector
    for (const args of [
      ['connector', 'status', '--config', conn.configFile, '--json'],
      ['connector', 'status', '--config', conn.configFile],
      ['connector', 'diagnose', '--config', conn.configFile, '--json'],
      ['connector', 'diagnose', '--config', conn.configFile],
    ]) {
      const o = await cli(args, { timeoutMs: 90_000 });
      see(`uemlink ${args.filter((a) => a !== conn.configFile).join(' ')} (stdout+stderr)`, o.stdout + o.stderr);
    }
    bundleFile = join(dir, 'bundle.tar.gz');
    const b = await cli(['connector', 'support-bundle', '--config', conn.configFile, '-o', bundleFile], { timeoutMs: 90_000 });
    expect(b.code, b.stderr).to.equal(0);
    see('uemlink connector support-bundle (stdout+stderr)', b.stdout + b.stderr);
    for (const e of await gunzipTar(readFileSync(bundleFile))) see(`support bundle (CLI) ${e.name}`, e.text);

    // ---- config errors that carry secrets
    const badConn = await makeConnector({
      config: {
        cloudUrl: `https://admin:${S.cfgCloudUrlPassword}@relay.example.com`,
        targets: [
          { id: 't1', baseUrl: `https://svc:${S.cfgBaseUrlPassword}@uem.example.com/API`, auth: { type: 'none' } },
          { id: 't2', baseUrl: 'https://uem.example.com', auth: { type: 'basic', username: 'u', passwrd: S.cfgTypoPassword } },
          { id: 't3', baseUrl: 'https://uem.example.com', auth: { type: 'basic', username: 'u', password: S.cfgBothPassword, passwordFile: 'nope' } },
        ],
      },
    });
    throwaway.push(badConn);
    for (const cmd of ['run', 'diagnose']) {
      const o = await cli(['connector', cmd, '--config', badConn.configFile]);
      expect(o.code, `connector ${cmd} with a bad config`).to.not.equal(0);
      see(`uemlink connector ${cmd} (bad config)`, o.stdout + o.stderr);
    }
    // A support bundle is made with a bad config too (it is what support asks for after a bad
    // edit), and the config's secrets, one under a misspelt key among them, stay out of it.
    const badBundle = join(badConn.dir, 'b.tgz');
    const bb = await cli(['connector', 'support-bundle', '--config', badConn.configFile, '-o', badBundle]);
    expect(bb.code, bb.stderr).to.equal(0);
    see('uemlink connector support-bundle (bad config)', bb.stdout + bb.stderr);
    for (const e of await gunzipTar(readFileSync(badBundle))) see(`support bundle (bad config) ${e.name}`, e.text);
    const badCloudDir = tempDir('uemlink-sec-badcloud-');
    ownDirs.push(badCloudDir);
    writeFileSync(join(badCloudDir, 'cloud.json'), JSON.stringify({ listen: '127.0.0.1:0', publicUrl: `https://admin:${S.publicUrlPassword}@relay.example.com`, dataDir: './data', adminToken: S.shortAdminToken }));
    const bc = await cli(['cloud', 'run', '--config', join(badCloudDir, 'cloud.json')]);
    expect(bc.code).to.equal(78);
    see('uemlink cloud run (bad config)', bc.stdout + bc.stderr);

    // ---- pairing from a second connector's local page: a token from `cloud token create`, a forged one first
    const tc = await cli(['cloud', 'token', 'create', '--config', cloud.configFile, '--tenant', 'acme', '--group', 'page']);
    expect(tc.code, tc.stderr).to.equal(0);
    generated.cliPairingToken = tc.stdout.trim(); // stdout is the token alone, by design
    see('uemlink cloud token create (stderr)', tc.stderr);
    const conn2 = await makeConnector({ config: { logFile: './connector.log' } });
    throwaway.push(conn2);
    await conn2.start();
    const page2 = `http://${(JSON.parse(readFileSync(conn2.configFile, 'utf8')) as { health: { listen: string } }).health.listen}`;
    await until(async () => (await fetch(`${page2}/healthz`).catch(() => undefined))?.status === 200, 15_000, 'the second page');
    generated.generatedAdminPassword = readFileSync(join(conn2.dir, 'state', 'admin-password'), 'utf8').trim();
    const home2 = await fetch(`${page2}/`);
    const csrf2 = /name="csrf" value="([^"]+)"/.exec(await home2.text())?.[1] ?? '';
    const cookie2 = home2.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const pair2 = (token: string): Promise<Response> =>
      fetch(`${page2}/actions/pair`, { method: 'POST', redirect: 'manual', headers: { cookie: cookie2, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, password: generated.generatedAdminPassword!, csrf: csrf2 }).toString() });
    const forgedPage = await pair2(generated.cliPairingToken.split('.').slice(0, 3).join('.') + `.${S.forgedPairingSecret}`);
    expect(forgedPage.status).to.equal(400);
    see('second page: forged pairing token', await forgedPage.text());
    const okPage = await pair2(generated.cliPairingToken);
    expect(okPage.status, await okPage.clone().text()).to.equal(303);
    await until(async () => ((await (await fetch(`${page2}/api/status`)).json()) as { tunnel: { state: string } }).tunnel.state === 'connected', 20_000, 'the second connector connected');
    see('second page /', await (await fetch(`${page2}/`)).text());
    see('second page /api/status', await (await fetch(`${page2}/api/status`)).text());
    conn2.proc.kill('SIGTERM');
    await conn2.proc.wait(30_000);
    see('second connector stdout', conn2.proc.raw);
    see('second connector stderr', conn2.proc.stderr);
    see('second connector log file', readFileSync(join(conn2.dir, 'connector.log'), 'utf8'));

    // ---- the console (signed in with the admin token), and a failed sign-in
    const login = await fetch(`${cloud.url}/console/login`);
    const lhtml = await login.text();
    const ccsrf = /name="csrf" value="([^"]+)"/.exec(lhtml)?.[1] ?? '';
    const ccookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const consolePost = (token: string): Promise<Response> =>
      fetch(`${cloud.url}/console/login`, { method: 'POST', redirect: 'manual', headers: { cookie: ccookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, csrf: ccsrf }).toString() });
    const badLogin = await consolePost(S.wrongAdminToken);
    expect(badLogin.status).to.equal(401);
    see('console failed sign-in', await badLogin.text());
    const okLogin = await consolePost(S.cloudAdminToken);
    expect(okLogin.status).to.equal(303);
    const session = [ccookie, ...okLogin.headers.getSetCookie().map((c) => c.split(';')[0])].join('; ');
    for (const p of ['/console/connectors', '/console/connectors?tenant=acme', '/console/integrations?tenant=acme', ...created.map((id) => `/console/integrations/acme/${id}/edit`), '/console/devices?tenant=acme', '/console/apps?tenant=acme']) {
      const res = await fetch(`${cloud.url}${p}`, { headers: { cookie: session }, redirect: 'manual' });
      expect(res.status, p).to.equal(200);
      see(`console GET ${p}`, `${JSON.stringify([...res.headers])}\n${await res.text()}`);
    }

    // ---- the connector's last views, then both processes stop gracefully (shutdown logs included)
    see('local page /api/status', (await pageGet('/api/status')).text);
    see('local page /metrics', (await pageGet('/metrics')).text);
    see('local page /', (await pageGet('/')).text);
    see('local page /readyz', (await pageGet('/readyz')).text);
    conn.proc.kill('SIGTERM');
    await conn.proc.wait(30_000);
    cloud.proc.kill('SIGTERM');
    await cloud.proc.wait(30_000);
    see('cloud stdout', cloud.proc.raw);
    see('cloud stderr', cloud.proc.stderr);
    see('connector stdout', conn.proc.raw);
    see('connector stderr', conn.proc.stderr);
    for (const f of [...filesUnder(join(dir, 'logs')), ...filesUnder(join(dir, 'audit'))]) see(`file ${f.slice(dir.length + 1)}`, readFileSync(f, 'utf8'));
    // Keys the system made: the cloud's CA key and sealing key, the connector's sealing key.
    generated.cloudCaKey = readFileSync(join(cloudDir, 'data', 'ca.key'), 'utf8');
    generated.cloudSecretsKey = readFileSync(join(cloudDir, 'data', 'secrets.key'), 'utf8').trim();
    generated.connectorSealingKey = readFileSync(join(dir, 'state', 'managed-targets.key'), 'utf8').trim();
  });

  after(async () => {
    // SECRETS_SCAN_DUMP=dir keeps everything that was scanned, one file per source, for a human look.
    const dump = process.env.SECRETS_SCAN_DUMP;
    if (dump) {
      mkdirSync(dump, { recursive: true });
      observed.forEach((o, i) => writeFileSync(join(dump, `${String(i).padStart(3, '0')}-${o.source.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 100)}.txt`), o.text));
    }
    await conn?.proc?.stop();
    await cloud?.proc?.stop();
    for (const c of throwaway) await c.proc?.stop();
    await oauth?.stop();
    await up?.close();
    await sim?.close();
    if (!dump) for (const d of [cloudDir, conn?.dir, ...throwaway.map((c) => c.dir), ...ownDirs]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('saw a lot: every channel produced output', () => {
    const sources = observed.map((o) => o.source);
    for (const s of ['cloud stdout', 'connector stdout', 'local page /api/status', 'local page /metrics', 'support bundle (CLI) uemlink-support/status.json', 'support bundle (page) uemlink-support/logs/connector.log', 'file logs/connector.log', 'file audit/audit.log']) {
      expect(sources, s).to.include(s);
    }
    const total = observed.reduce((a, o) => a + o.text.length, 0);
    expect(total).to.be.greaterThan(200_000);
    // The failures really happened (so their messages were scanned).
    const all = observed.map((o) => o.text).join('\n');
    expect(all).to.contain('invalid_client');
    expect(all).to.contain('upstream_unreachable');
    expect(all).to.contain('User credentials are invalid');
    expect(all).to.match(/connector\.json: .*cloudUrl/);
  });

  it('no planted or generated secret appears in any log, page, status, metric, API answer, audit log or support bundle', () => {
    const needles: Array<[string, string]> = [];
    for (const [name, value] of Object.entries(S)) needles.push(...forms(name, value));
    for (const [name, value] of Object.entries(generated)) {
      if (name === 'privateKey' || name === 'cloudCaKey') {
        // Any line of the PEM body.
        for (const line of value.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'))) needles.push([`${name} (a line of the PEM)`, line]);
      } else needles.push(...forms(name, value).filter(([n]) => !n.includes('random part')));
    }
    const leaks: string[] = [];
    for (const o of observed) {
      for (const [name, needle] of needles) {
        const i = o.text.indexOf(needle);
        if (i >= 0) leaks.push(`${name} in ${o.source}: …${o.text.slice(Math.max(0, i - 80), i + needle.length + 40)}…`);
      }
    }
    expect(leaks, leaks.join('\n\n')).to.deep.equal([]);
    for (const o of observed) expect(o.text, o.source).to.not.match(/PRIVATE KEY-----\s*\n?[A-Za-z0-9+/]/);
  });

  it('secrets at rest are sealed: no planted value in clear in any state file of either side', () => {
    const needles = Object.entries(S).flatMap(([n, v]) => forms(n, v));
    const leaks: string[] = [];
    for (const f of [...filesUnder(join(cloudDir, 'data')), ...filesUnder(join(conn.dir, 'state'))]) {
      const text = readFileSync(f).toString('latin1');
      for (const [name, needle] of needles) if (text.includes(needle)) leaks.push(`${name} in ${f}`);
    }
    expect(leaks).to.deep.equal([]);
  });

  it('files holding secrets are 0600 and their directories 0700 (connector state dir, cloud data dir, logs, audit, bundle)', () => {
    const bad: string[] = [];
    for (const root of [join(cloudDir, 'data'), join(conn.dir, 'state')]) {
      for (const d of dirsUnder(root)) if ((lstatSync(d).mode & 0o777) !== 0o700) bad.push(`${d}: ${(lstatSync(d).mode & 0o777).toString(8)}`);
      for (const f of filesUnder(root)) if ((lstatSync(f).mode & 0o777) !== 0o600) bad.push(`${f}: ${(lstatSync(f).mode & 0o777).toString(8)}`);
    }
    for (const f of [...filesUnder(join(conn.dir, 'logs')), ...filesUnder(join(conn.dir, 'audit')), bundleFile]) {
      if ((lstatSync(f).mode & 0o777) !== 0o600) bad.push(`${f}: ${(lstatSync(f).mode & 0o777).toString(8)}`);
    }
    expect(filesUnder(join(conn.dir, 'state')).map((f) => f.slice(conn.dir.length + 1))).to.include.members(['state/state.json', `state/${connectorId}.key`, 'state/managed-targets.json']);
    expect(filesUnder(join(cloudDir, 'data')).map((f) => f.slice(cloudDir.length + 1))).to.include.members(['data/cloud-state.json', 'data/ca.key', 'data/secrets.key']);
    expect(bad).to.deep.equal([]);
  });

  it('the planted values were really used (the scan is not vacuous)', async () => {
    // The upstream checked the exact credentials: a 200 above means the connector sent them.
    const all = observed.map((o) => o.text).join('\n');
    expect(all).to.contain('[REDACTED]');
    // The cloud used the integration credentials: the UEM accepted them (basic and OAuth).
    expect(all.split('"detail":"accepted by the UEM"').length - 1).to.be.at.least(2);
    // The detector finds a secret hidden in an encoding: inside a Basic header, inside any base64 text, URL-encoded.
    const hits = (text: string): number => forms('basicPassword', S.basicPassword).filter(([, n]) => text.includes(n)).length;
    expect(hits(`Authorization: Basic ${Buffer.from(`${USERS.basicPassword}:${S.basicPassword}`).toString('base64')}`)).to.be.greaterThan(0);
    for (const pre of ['', 'a', 'ab', 'abc']) expect(hits(Buffer.from(`${pre}${S.basicPassword}tail`).toString('base64')), `offset ${pre.length}`).to.be.greaterThan(0);
    expect(hits(`?p=${encodeURIComponent(S.basicPassword)}`)).to.be.greaterThan(0);
    expect(hits(`[REDACTED]${S.basicPassword.slice(-20)}`), 'a partial leak (the random part)').to.be.greaterThan(0);
    await sleep(0);
  });
});
