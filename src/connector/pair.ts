/**
 * Pairing from the connector's side: generate a key and CSR, redeem the token at the cloud, store
 * the identity. The private key never leaves the machine; only the CSR travels.
 */
import { readFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { UemlinkError } from '../common/errors.js';
import { parsePairingToken } from '../common/pairing-token.js';
import { CONNECTOR_ID_RE, GROUP_RE, TENANT_RE } from '../common/names.js';
import { createCsr, generateRsaKeyPair } from '../common/pki.js';
import { signReplacement } from '../common/replacement.js';
import { secrets } from '../common/redact.js';
import { VERSION } from '../common/version.js';
import type { ConnectorConfig } from './config.js';
import { requestJson } from './http-json.js';
import { proxyAgent, proxyFor, proxyLabel } from './proxy.js';
import type { ConnectorStateStore } from './state.js';

export interface PairOutcome {
  connectorId: string;
  tenant: string;
  group: string;
  cloudUrl: string;
  /** The identity this pairing replaced, and whether the cloud retired it (absent: none to replace). */
  replaced?: { connectorId: string; revoked: boolean; reason?: string };
  /** The proxy pairing went through when it came from this process's environment, not the config (label, no credentials). */
  proxyFromEnvironment?: string;
}

/** The cloud's HTTP base for API calls: the config's cloudUrl wins over the token's. */
export function apiBase(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  if (u.protocol === 'wss:') u.protocol = 'https:';
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u.toString();
}

export function tunnelUrl(cloudUrl: string): string {
  const u = new URL('api/v1/tunnel', apiBase(cloudUrl));
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}

export async function readCloudCa(cfg: ConnectorConfig): Promise<string[] | undefined> {
  if (!cfg.cloudCaFile) return undefined;
  try {
    return [await readFile(cfg.cloudCaFile, 'utf8')];
  } catch (e) {
    // Retryable: a file being replaced (or a volume not mounted yet) is worth trying again, and
    // it is not the cloud refusing anyone.
    throw new UemlinkError('CONFIG_UNREADABLE', `cloud.caFile ${cfg.cloudCaFile} cannot be read: ${(e as Error).message}`, { retryable: true });
  }
}

export async function pairConnector(
  cfg: ConnectorConfig,
  state: ConnectorStateStore,
  tokenText: string,
  opts: { force?: boolean } = {},
): Promise<PairOutcome> {
  secrets.add(tokenText.trim());
  let keyLost = false;
  const existing = await state.identity().catch((e: unknown) => {
    // A broken identity may be replaced with --force; without it, say what is wrong.
    if (opts.force) {
      keyLost = true;
      return undefined;
    }
    throw e;
  });
  // The identity replaced when its key cannot be read: named, so that the warning says which record to revoke.
  const unproven = keyLost ? (await state.store.read().catch(() => undefined))?.identity : undefined;
  if (existing && !opts.force) {
    throw new UemlinkError(
      'PAIR_ALREADY_PAIRED',
      `this connector is already paired as ${existing.connectorId} (tenant ${existing.tenant}, since ${existing.pairedAt}); use --force to pair it again`,
    );
  }
  const token = parsePairingToken(tokenText);
  await state.assertWritable();
  const cloudUrl = cfg.cloudUrl ?? token.cloudUrl;
  const keys = generateRsaKeyPair(2048);
  const host = osHostname();
  const csr = createCsr(keys.privateKeyPem, { CN: host.slice(0, 64) || 'connector' });
  const ca = await readCloudCa(cfg);
  const url = new URL('api/v1/pair', apiBase(cloudUrl)).toString();
  // Ask the cloud to retire the identity being replaced, with proof that it is ours. Only to the
  // cloud that issued it: another cloud has no such record, and needs no old connector id.
  const replaces = existing && sameOrigin(existing.cloudUrl, cloudUrl)
    ? { connectorId: existing.connectorId, signature: signReplacement(existing.privateKeyPem, existing.connectorId, token.id, csr) }
    : undefined;
  const proxy = proxyFor(url, cfg.proxy);
  let res;
  try {
    res = await requestJson(url, {
      method: 'POST',
      body: { token: tokenText.trim(), csr, hostname: host, version: VERSION, ...(replaces ? { replaces } : {}) },
      ...(ca ? { ca } : {}),
      ...(proxy ? { agent: proxyAgent(proxy, ca) } : {}),
      timeoutMs: 30_000,
    });
  } catch (e) {
    throw new UemlinkError('PAIR_FAILED', `pairing failed${proxy ? ` (through the proxy ${proxyLabel(proxy)})` : ''}: ${(e as Error).message}`, { cause: e, retryable: true });
  }
  const body = (res.body ?? {}) as Record<string, unknown>;
  if (res.status === 407 || (res.status === 401 && proxy)) {
    throw new UemlinkError('PAIR_FAILED', `pairing failed: the proxy ${proxy ? proxyLabel(proxy) : ''} refused the credentials (HTTP ${res.status}): check proxy.url / proxy.passwordFile`);
  }
  if (res.status !== 201) {
    const code = typeof body.error === 'string' ? printable(body.error).slice(0, 64) : `http_${res.status}`;
    const msg = typeof body.message === 'string' ? printable(body.message).slice(0, 500) : `the cloud answered HTTP ${res.status}`;
    const map: Record<string, 'PAIR_TOKEN_MALFORMED' | 'PAIR_TOKEN_UNKNOWN' | 'PAIR_TOKEN_EXPIRED' | 'PAIR_TOKEN_USED' | 'PAIR_RATE_LIMITED'> = {
      token_malformed: 'PAIR_TOKEN_MALFORMED',
      token_unknown: 'PAIR_TOKEN_UNKNOWN',
      token_expired: 'PAIR_TOKEN_EXPIRED',
      token_used: 'PAIR_TOKEN_USED',
      rate_limited: 'PAIR_RATE_LIMITED',
    };
    throw new UemlinkError(map[code] ?? 'PAIR_FAILED', `pairing refused (${code}): ${msg}`);
  }
  for (const k of ['connectorId', 'tenant', 'group', 'certificate', 'caCertificate'] as const) {
    if (typeof body[k] !== 'string') throw new UemlinkError('PAIR_FAILED', `pairing failed: the cloud's answer lacks "${k}"`);
  }
  // Checked before anything is written: the connector id names the key file (a "../…" id from a
  // hostile cloud, which the pairing string itself chooses, wrote a key outside stateDir).
  for (const [k, re] of [['connectorId', CONNECTOR_ID_RE], ['tenant', TENANT_RE], ['group', GROUP_RE]] as const) {
    if (!re.test(body[k] as string)) throw new UemlinkError('PAIR_FAILED', `pairing failed: the cloud's answer has a malformed "${k}"`);
  }
  const identity = {
    connectorId: body.connectorId as string,
    tenant: body.tenant as string,
    group: body.group as string,
    cloudUrl,
    certificate: body.certificate as string,
    caCertificate: body.caCertificate as string,
    pairedAt: new Date().toISOString(),
  };
  await state.save(identity, keys.privateKeyPem);
  const outcome: PairOutcome = { connectorId: identity.connectorId, tenant: identity.tenant, group: identity.group, cloudUrl };
  if (proxy && !cfg.proxy) outcome.proxyFromEnvironment = proxyLabel(proxy);
  if (replaces) outcome.replaced = replacementOf(body.replaces, replaces.connectorId);
  else if (existing) outcome.replaced = { connectorId: existing.connectorId, revoked: false, reason: `it was issued by ${new URL(apiBase(existing.cloudUrl)).origin}, not this cloud` };
  else if (unproven) outcome.replaced = { connectorId: unproven.connectorId, revoked: false, reason: 'its key could not be read, so nothing could prove it was ours' };
  return outcome;
}

/** A cloud's words for a terminal: without control characters (escapes could rewrite the screen or the clipboard). */
function printable(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(apiBase(a)).origin === new URL(apiBase(b)).origin;
  } catch {
    return false;
  }
}

/** The cloud's answer about the replaced identity; a cloud that predates re-pairing proofs says nothing. */
function replacementOf(v: unknown, asked: string): NonNullable<PairOutcome['replaced']> {
  const r = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (r.revoked === true) return { connectorId: asked, revoked: true };
  const reason = typeof r.reason === 'string' ? printable(r.reason).slice(0, 200) : 'this cloud does not retire replaced connectors';
  return { connectorId: asked, revoked: false, reason };
}
