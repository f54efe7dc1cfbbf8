/**
 * "Doctor": every step between this connector and its cloud and UEMs, checked one by one, each with a
 * plain-language hint when it fails. Used by `uemlink connector diagnose` and the page's button.
 *
 * Steps towards the cloud: DNS, TCP (to the proxy when there is one), proxy CONNECT and proxy auth,
 * TLS handshake and chain (naming a re-signing proxy's issuer), clock skew against the cloud's Date
 * header, WebSocket upgrade and tunnel authentication (a probe that does not disturb the live
 * session). Towards each target: DNS, TCP, TLS, and a real authenticated request to its healthPath.
 */
import { lookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { isLooselyProtected } from '../common/config.js';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf } from '../common/errors.js';
import { certInfo } from '../common/pki.js';
import { redactString } from '../common/redact.js';
import type { ConnectorConfig } from './config.js';
import { apiBase, readCloudCa, tunnelUrl } from './pair.js';
import { proxyFor, proxyLabel } from './proxy.js';
import type { Identity } from './state.js';
import { Target, UpstreamError, type UpstreamResponse } from './targets/target.js';
import { describeTlsFailure, tlsOptionsFor } from './targets/trust.js';
import { TunnelError, connectTunnel, type TunnelClientOptions } from './tunnel-client.js';
import { trustContext } from '../common/tls-trust.js';

export type CheckStatus = 'pass' | 'fail' | 'warn' | 'skip';

export interface Check {
  /** Stable id, e.g. "cloud.dns" or "target.ws1.auth". */
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
  hint?: string;
  durationMs: number;
}

export interface Diagnosis {
  ok: boolean;
  startedAt: string;
  checks: Check[];
}

export interface DiagnoseInput {
  config: ConnectorConfig;
  identity: Identity | undefined;
  /** Why the stored identity could not be read (a corrupt state file): the Pairing check fails with it. */
  identityError?: string;
  targets: Target[];
  /** Targets of the config that could not be set up (a secret or CA file unreadable): each a failed check. */
  unresolved?: ReadonlyArray<{ id: string; problem: string }>;
  /** Builds tunnel dial options (the daemon's, so proxy and trust are exactly what the tunnel uses). */
  tunnelOptions?: (identity: Identity, extra: Partial<TunnelClientOptions>) => Promise<TunnelClientOptions>;
}

class Step {
  constructor(readonly id: string, readonly title: string) {}
}

const TIMEOUT = 8000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/**
 * The most one step may take. Each step's own I/O has TIMEOUT (some make two or three calls); this
 * is the backstop that keeps a step whose I/O waits on something without a timeout of its own (a
 * TLS handshake a black hole never answers) from hanging the whole diagnosis, and with it the
 * support bundle and the local page's Diagnose button.
 */
const STEP_DEADLINE = 3 * TIMEOUT;

async function run(checks: Check[], step: Step, fn: () => Promise<{ status?: CheckStatus; detail: string; hint?: string }>): Promise<boolean> {
  const t0 = Date.now();
  try {
    const r = await withTimeout(fn(), STEP_DEADLINE, step.title);
    const c: Check = { id: step.id, title: step.title, status: r.status ?? 'pass', detail: redactString(r.detail), durationMs: Date.now() - t0 };
    if (r.hint) c.hint = redactString(r.hint);
    checks.push(c);
    return c.status !== 'fail';
  } catch (e) {
    const err = e as Error & { hint?: string };
    const c: Check = { id: step.id, title: step.title, status: 'fail', detail: redactString(messageOf(e)), durationMs: Date.now() - t0 };
    if (err.hint) c.hint = redactString(err.hint);
    checks.push(c);
    return false;
  }
}

function fail(detail: string, hint: string): Error & { hint: string } {
  return Object.assign(new Error(detail), { hint });
}

function skip(checks: Check[], id: string, title: string, why: string): void {
  checks.push({ id, title, status: 'skip', detail: why, durationMs: 0 });
}

async function dnsStep(checks: Check[], id: string, host: string): Promise<boolean> {
  if (isIP(host.replace(/^\[|\]$/g, ''))) {
    skip(checks, id, `DNS ${host}`, 'an IP address; nothing to resolve');
    return true;
  }
  return run(checks, new Step(id, `DNS ${host}`), async () => {
    try {
      const addrs = await withTimeout(lookup(host, { all: true }), TIMEOUT, 'DNS lookup');
      return { detail: `${host} resolves to ${addrs.map((a) => a.address).join(', ')}` };
    } catch (e) {
      throw fail(`${host} does not resolve (${(e as NodeJS.ErrnoException).code ?? messageOf(e)})`, 'check the name for typos and that this host\'s DNS servers can resolve it (resolv.conf / split DNS)');
    }
  });
}

function tcpStep(checks: Check[], id: string, host: string, port: number, what: string): Promise<boolean> {
  return run(checks, new Step(id, `TCP ${what} ${host}:${port}`), () =>
    new Promise((resolve, reject) => {
      const t0 = Date.now();
      const s = netConnect({ host: host.replace(/^\[|\]$/g, ''), port, timeout: TIMEOUT });
      s.once('connect', () => {
        s.destroy();
        resolve({ detail: `connected in ${Date.now() - t0} ms` });
      });
      s.once('timeout', () => {
        s.destroy();
        reject(fail(`no answer from ${host}:${port} within ${TIMEOUT} ms`, 'a firewall may drop the traffic silently; check outbound rules for this port'));
      });
      s.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          fail(
            `cannot connect to ${host}:${port} (${e.code ?? e.message})`,
            e.code === 'ECONNREFUSED' ? 'nothing listens there: check the port, and that the service runs' : 'check routing and firewall rules between this host and the destination',
          ),
        ),
      );
    }),
  );
}

/** Opens a CONNECT tunnel through the proxy; resolves with the socket or rejects with a hint. */
function proxyConnect(proxyUrl: string, host: string, port: number): Promise<import('node:net').Socket> {
  const p = new URL(proxyUrl);
  const headers: Record<string, string> = { host: `${host}:${port}` };
  if (p.username || p.password) headers['proxy-authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(p.username)}:${decodeURIComponent(p.password)}`).toString('base64')}`;
  return new Promise((resolve, reject) => {
    const req = (p.protocol === 'https:' ? httpsRequest : httpRequest)({ host: p.hostname, port: Number(p.port || (p.protocol === 'https:' ? 443 : 80)), method: 'CONNECT', path: `${host}:${port}`, headers, timeout: TIMEOUT });
    req.once('connect', (res: IncomingMessage, socket) => {
      if (res.statusCode === 200) return resolve(socket);
      socket.destroy();
      if (res.statusCode === 407 || res.statusCode === 401) reject(fail(`the proxy ${proxyLabel(proxyUrl)} refused the credentials (HTTP ${res.statusCode}${res.statusCode === 407 ? ' Proxy Authentication Required' : ''})`, p.username ? 'the proxy refused the user or password: check proxy.url / proxy.passwordFile' : 'the proxy needs credentials: add them to proxy.url (user) and proxy.passwordFile'));
      else reject(fail(`the proxy ${proxyLabel(proxyUrl)} refused CONNECT ${host}:${port} with HTTP ${res.statusCode}`, 'ask the proxy admins to allow CONNECT to this host and port'));
    });
    req.once('timeout', () => req.destroy(fail(`the proxy ${proxyLabel(proxyUrl)} did not answer within ${TIMEOUT} ms`, 'check proxy.url')));
    req.once('error', (e) => reject(e));
    req.end();
  });
}

export async function diagnose(input: DiagnoseInput): Promise<Diagnosis> {
  const checks: Check[] = [];
  const startedAt = new Date().toISOString();
  const cfg = input.config;
  const id = input.identity;

  // ---- identity
  await run(checks, new Step('identity', 'Pairing'), async () => {
    if (input.identityError) throw fail(input.identityError, 'restore the state file from a backup, or move it aside and pair again');
    if (!id) throw fail('this connector is not paired', 'pair it on the local page, or run "uemlink connector pair --config FILE --token-file FILE"');
    const x = new X509Certificate(id.certificate);
    const left = Math.floor((Date.parse(x.validTo) - Date.now()) / 86_400_000);
    if (left < 0) throw fail(`the connector certificate expired on ${new Date(x.validTo).toISOString()}`, 'pair the connector again');
    return { status: left < 30 ? 'warn' : 'pass', detail: `paired as ${id.connectorId} (tenant ${id.tenant}, group ${id.group}); certificate valid ${left} more days` };
  });

  // ---- secret files
  await run(checks, new Step('secrets.files', 'Secret files readable by the service only'), async () => {
    const loose = (await secretFiles(cfg)).filter((f) => isLooselyProtected(f));
    if (loose.length > 0) {
      return { status: 'warn', detail: `readable by group or others: ${loose.join(', ')}`, hint: `chmod 600 ${loose.join(' ')} (and chown them to the service user)` };
    }
    return { detail: 'the secret files named in the config and kept in the state directory are private' };
  });

  // ---- the cloud
  const cloudUrl = cfg.cloudUrl ?? id?.cloudUrl;
  if (!cloudUrl) {
    skip(checks, 'cloud', 'Cloud', 'no cloud address yet (it comes with the pairing token, or set cloudUrl)');
  } else {
    const u = new URL(apiBase(cloudUrl));
    const secure = u.protocol === 'https:';
    const port = Number(u.port || (secure ? 443 : 80));
    const proxy = proxyFor(tunnelUrl(cloudUrl), cfg.proxy);
    const ca = await readCloudCa(cfg).catch(() => undefined);
    let reachable: boolean;
    if (proxy) {
      const pu = new URL(proxy);
      const pport = Number(pu.port || (pu.protocol === 'https:' ? 443 : 80));
      reachable = (await dnsStep(checks, 'proxy.dns', pu.hostname)) && (await tcpStep(checks, 'proxy.tcp', pu.hostname, pport, 'to the proxy'));
      if (reachable) {
        reachable = await run(checks, new Step('proxy.connect', `Proxy CONNECT to ${u.hostname}:${port}`), async () => {
          const s = await proxyConnect(proxy, u.hostname, port);
          s.destroy();
          return { detail: `${proxyLabel(proxy)} opened a tunnel to ${u.hostname}:${port}${pu.username ? ' (proxy authentication accepted)' : ''}` };
        });
      }
    } else {
      reachable = (await dnsStep(checks, 'cloud.dns', u.hostname)) && (await tcpStep(checks, 'cloud.tcp', u.hostname, port, 'to the cloud'));
    }
    if (reachable && secure) {
      reachable = await run(checks, new Step('cloud.tls', `TLS ${u.hostname}`), async () => {
        const socket = proxy ? await proxyConnect(proxy, u.hostname, port) : undefined;
        const trusted = await new Promise<{ ok: boolean; code?: string; cert?: ReturnType<typeof certInfo> }>((resolve) => {
          const s = tlsConnect({ host: u.hostname, port, ...(socket ? { socket } : {}), ...(isIP(u.hostname) ? {} : { servername: u.hostname }), secureContext: trustContext(ca ?? []), rejectUnauthorized: false, timeout: TIMEOUT });
          s.once('secureConnect', () => {
            const raw = s.getPeerCertificate().raw;
            const err = s.authorizationError as unknown as string | Error | null;
            let code = err ? (typeof err === 'string' ? err : ((err as NodeJS.ErrnoException).code ?? err.message)) : undefined;
            if (!code && raw) {
              const idErr = tlsOptionsFor({ caPems: [], pins: [] }, u.hostname).checkServerIdentity(u.hostname, s.getPeerCertificate());
              if (idErr) code = (idErr as NodeJS.ErrnoException).code ?? 'ERR_TLS_CERT_ALTNAME_INVALID';
            }
            s.destroy();
            resolve({ ok: !code, ...(code ? { code } : {}), ...(raw ? { cert: certInfo(new X509Certificate(raw)) } : {}) });
          });
          s.once('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, code: e.code ?? e.message }));
          // `timeout` only emits an event: a peer that accepts TCP and never answers the handshake
          // (a black-holing firewall, a stuck inspection proxy) would otherwise be waited on for ever.
          s.once('timeout', () => {
            s.destroy();
            resolve({ ok: false, code: 'ETIMEDOUT' });
          });
        });
        if (trusted.ok) return { detail: `certificate "${trusted.cert?.subject}" issued by "${trusted.cert?.issuer}" is trusted, valid until ${trusted.cert?.notAfter}` };
        const issuer = trusted.cert?.issuer ?? 'unknown';
        if (trusted.code && /ISSUER|SELF_SIGNED|VERIFY_LEAF/.test(trusted.code)) {
          throw fail(
            `the certificate presented for ${u.hostname} ("${trusted.cert?.subject ?? '?'}") is issued by "${issuer}", which this connector does not trust`,
            proxy
              ? `a TLS-inspecting proxy is probably re-signing the connection with its own CA ("${issuer}"): put that CA's certificate (PEM) in a file and set cloud.caFile to it`
              : `if a TLS-inspecting firewall re-signs traffic, put its CA certificate ("${issuer}") in a PEM file and set cloud.caFile; otherwise the cloud's certificate chain is incomplete`,
          );
        }
        if (trusted.code === 'ETIMEDOUT') {
          throw fail(`TLS to ${u.hostname}: the connection was accepted but the TLS handshake got no answer within ${TIMEOUT} ms`, `something between here and the cloud holds the traffic (a firewall that accepts and drops, a TLS-inspecting proxy that is stuck)${proxy ? ', or the proxy\'s tunnel leads nowhere' : ''}; check that ${u.hostname}:${port} is the cloud's HTTPS address`);
        }
        throw fail(`TLS to ${u.hostname} failed: ${describeTlsFailure(trusted.code)}`, trusted.code === 'CERT_HAS_EXPIRED' ? 'the cloud\'s certificate has expired (or this host\'s clock is wrong: see the clock check)' : 'check cloud.caFile and the address in cloudUrl');
      });
    }
    if (reachable) {
      await run(checks, new Step('cloud.clock', 'Clock skew against the cloud'), async () => {
        const res = await fetchDate(new URL('healthz', u).toString(), proxy, ca);
        if (res.status >= 500 || !res.date) throw fail(`the cloud answered HTTP ${res.status} without a Date header`, 'is cloudUrl the uemlink relay?');
        const skew = (Date.now() - Date.parse(res.date)) / 1000;
        const abs = Math.abs(skew);
        if (abs > 300) throw fail(`this host's clock is ${abs.toFixed(0)} s ${skew > 0 ? 'ahead of' : 'behind'} the cloud`, 'certificates and tokens fail with a wrong clock: enable NTP (timedatectl set-ntp true)');
        return { status: abs > 30 ? 'warn' : 'pass', detail: `clock differs from the cloud by ${skew.toFixed(1)} s` };
      });
    }
    if (reachable && id && input.tunnelOptions) {
      await run(checks, new Step('cloud.tunnel', 'WebSocket upgrade and tunnel authentication'), async () => {
        try {
          const c = await connectTunnel(await input.tunnelOptions!(id, { probe: true, heartbeatMs: 0 }));
          c.session.close(1000, 'probe done');
          return { detail: `the cloud accepted ${id.connectorId} (tenant ${c.welcome.tenant})` };
        } catch (e) {
          const err = e as TunnelError;
          const hints: Record<string, string> = {
            TUNNEL_REVOKED: 'this connector was revoked in the cloud: pair it again with a new token',
            TUNNEL_AUTH_FAILED: 'the cloud does not accept this identity: pair the connector again',
            TUNNEL_UNSUPPORTED_VERSION: 'the connector and the cloud speak different protocol versions: upgrade the older one',
            TUNNEL_OVERLOADED: 'the cloud is busy; the connector retries by itself',
            TUNNEL_DIAL_FAILED: 'the WebSocket upgrade failed: a proxy or firewall may block WebSockets (Upgrade headers) to the cloud',
          };
          throw fail(err.message, hints[err.code] ?? 'see the message');
        }
      });
    }
  }

  // ---- targets
  for (const u of input.unresolved ?? []) {
    await run(checks, new Step(`target.${u.id}.config`, `${u.id}: its files (secrets, CA)`), async () => {
      const credential = u.problem.includes('/run/credentials/');
      throw fail(
        u.problem,
        credential
          ? 'a systemd credential (LoadCredential=) exists only while the service runs: start it and run diagnose again, or keep this secret in a file readable by the service user'
          : 'make the file readable by the service user (mode 0600, owned by it), or fix the path',
      );
    });
  }
  for (const t of input.targets) {
    const host = t.baseUrl.hostname.replace(/^\[|\]$/g, '');
    const port = Number(t.baseUrl.port || 443);
    const pre = `target.${t.id}`;
    const ok = (await dnsStep(checks, `${pre}.dns`, host)) && (await tcpStep(checks, `${pre}.tcp`, host, port, `to ${t.id}`));
    if (!ok) continue;
    await run(checks, new Step(`${pre}.request`, `${t.id}: TLS and an authenticated request to ${t.healthPath ?? '/'}`), async () => {
      let res: UpstreamResponse;
      try {
        res = await t.send({ method: 'GET', path: t.healthPath ?? '/', headers: [['accept', 'application/json']], body: null, signal: new AbortController().signal, timeoutMs: Math.min(t.timeoutMs, 15_000) });
      } catch (e) {
        const err = e as UpstreamError;
        throw fail(err.message, targetHint(t, err));
      }
      const body = await readSmall(res.body);
      const status = res.statusCode;
      // The URL as called: the base path and the health path (the base path was left out).
      const where = `${t.baseUrl.host}${t.baseUrl.pathname.replace(/\/+$/, '')}${t.healthPath ?? '/'}`;
      if (status >= 200 && status < 400) return { detail: `HTTP ${status} from ${where}` };
      throw fail(`HTTP ${status} from ${where}${body.message ? `: ${body.message}` : ''}`, statusHint(t, status, body));
    });
  }
  return { ok: checks.every((c) => c.status !== 'fail'), startedAt, checks };
}

/**
 * Secret files: those the config names, and those the connector keeps in its state directory (the
 * generated admin password, its private keys, the managed targets' sealing key).
 */
async function secretFiles(cfg: ConnectorConfig): Promise<string[]> {
  const own = await readdir(cfg.stateDir).catch(() => [] as string[]);
  const kept = own.filter((n) => n === 'admin-password' || n.endsWith('.key')).map((n) => join(cfg.stateDir, n));
  return [...new Set([...cfg.secretFiles, ...kept])];
}

function targetHint(t: Target, err: UpstreamError): string {
  if (err.code === 'upstream_tls') {
    const c = err.nodeCode;
    if (c === 'CERT_HAS_EXPIRED') return `the UEM's certificate${err.peerCert ? ` ("${err.peerCert.subject}")` : ''} has expired: renew it on the UEM server`;
    if (c === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'the certificate does not name the host in baseUrl: use the name in the certificate, or set tls.serverName';
    if (c === 'ERR_UEMLINK_PIN_MISMATCH') return 'the certificate changed since tls.pinSha256 was set: check the new certificate, then update the pin';
    // Not a certificate at all: no CA file would help.
    if (c === 'ERR_SSL_WRONG_VERSION_NUMBER' || c === 'EPROTO') return `the server on that port does not speak TLS: check the port and scheme of baseUrl of target "${t.id}" (http:// for a plain-HTTP port, or the UEM's HTTPS port)`;
    return `the UEM's certificate${err.peerCert ? ` is issued by "${err.peerCert.issuer}", which` : ''} is not trusted: export the UEM's CA certificate (PEM) and set tls.caFile of target "${t.id}"`;
  }
  if (err.code === 'upstream_auth') {
    if (/invalid_client/.test(err.message)) return 'the OAuth client id or secret is wrong: check auth.clientId and auth.clientSecretFile';
    if (/unreachable|timed out|did not answer/.test(err.message)) return 'the OAuth token endpoint cannot be reached: check auth.tokenUrl and the firewall';
    return 'the OAuth token endpoint refused or answered oddly: check auth.tokenUrl, client id and secret';
  }
  if (err.code === 'upstream_timeout') return `the UEM did not answer within ${t.timeoutMs} ms: check its load, or raise timeoutMs`;
  return 'check baseUrl and that the UEM server is running';
}

function statusHint(t: Target, status: number, body: { errorCode?: number; message?: string }): string {
  const auth = t.credentials.kind;
  if (status === 401) {
    if (body.errorCode === 1005 || auth === 'basic') return 'the UEM rejected the user name or password: check auth.username and auth.passwordFile';
    if (auth === 'apiKey') return 'the UEM rejected the API key: check auth.valueFile (and auth.header)';
    if (auth === 'oauth2') return 'the UEM rejected the OAuth token: check the client\'s permissions and scope';
    return 'the UEM requires credentials: configure auth for this target';
  }
  if (status === 403) {
    if (body.errorCode === 1013 || (auth === 'basic' && /tenant code/i.test(body.message ?? ''))) return 'the UEM rejected the REST API key (aw-tenant-code): check auth.apiKeyFile';
    return 'the account lacks permission for this path: check its role in the UEM console, or choose another healthPath';
  }
  if (status === 404) return 'healthPath does not exist on this UEM: check baseUrl (e.g. https://host/API) and healthPath';
  if (status === 429) return 'the UEM rate-limits this account: wait, or ask for a higher quota';
  return 'the UEM answered with an error: see its logs';
}

async function readSmall(res: Readable): Promise<{ errorCode?: number; message?: string }> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > 64 * 1024) break;
    chunks.push(c as Buffer);
  }
  try {
    const j = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { errorCode?: unknown; message?: unknown };
    const out: { errorCode?: number; message?: string } = {};
    if (typeof j.errorCode === 'number') out.errorCode = j.errorCode;
    if (typeof j.message === 'string') out.message = j.message.slice(0, 300);
    return out;
  } catch {
    return {};
  }
}

async function fetchDate(url: string, proxy: string | undefined, ca: string[] | undefined): Promise<{ status: number; date?: string }> {
  const { proxyAgent } = await import('./proxy.js');
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      {
        host: u.hostname,
        port: u.port || (u.protocol === 'https:' ? 443 : 80),
        path: u.pathname,
        method: 'GET',
        timeout: TIMEOUT,
        ...(proxy ? { agent: proxyAgent(proxy, ca) } : {}),
        ...(ca && u.protocol === 'https:' ? { secureContext: trustContext(ca) } : {}),
      },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, ...(res.headers.date ? { date: res.headers.date } : {}) });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

export function formatDiagnosis(d: Diagnosis): string {
  const mark: Record<CheckStatus, string> = { pass: 'PASS', fail: 'FAIL', warn: 'WARN', skip: 'skip' };
  const lines = d.checks.map((c) => {
    let s = `${mark[c.status].padEnd(4)}  ${c.title}\n      ${c.detail}`;
    if (c.hint && c.status !== 'pass') s += `\n      → ${c.hint}`;
    return s;
  });
  const failed = d.checks.filter((c) => c.status === 'fail').length;
  lines.push('', d.ok ? 'all checks passed' : `${failed} check${failed > 1 ? 's' : ''} failed`);
  return lines.join('\n');
}
