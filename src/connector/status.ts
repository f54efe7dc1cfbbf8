/**
 * The connector's status as one JSON document (GET /api/status, docs/status.md): the local page,
 * `uemlink connector status`, readiness and support bundles all read this, so they always agree.
 * Readiness is a pure function of it.
 */
import { X509Certificate } from 'node:crypto';
import si from 'systeminformation';
import type { RecentEntry } from '../common/log.js';
import { redact } from '../common/redact.js';
import { VERSION } from '../common/version.js';
import type { ManagedView } from './managed-targets.js';
import type { LastError, Supervisor } from './supervisor.js';
import type { Target } from './targets/target.js';

/**
 * `draining`: connected, but the session takes no new requests (the connector is shutting down, or
 * the cloud sent GOAWAY: a deploy, a drain) and ends once those in flight are done.
 */
export type TunnelStateName = 'unpaired' | 'connecting' | 'connected' | 'draining' | 'disconnected' | 'refused' | 'stopped';

export interface CertView {
  subject: string;
  issuer: string;
  notAfter: string;
  fingerprint256: string;
  daysLeft: number;
  /** Fewer than 30 days left. */
  expiringSoon: boolean;
}

export interface TargetStatus {
  id: string;
  baseUrl: string;
  origin: 'local' | 'cloud';
  reachable: boolean | null;
  latencyMs: number | null;
  lastStatus: number | null;
  /** HTTP status of the last health check (null: none, or no answer). */
  checkStatus: number | null;
  checkedAt: string | null;
  error: { code: string; message: string } | null;
  tls: CertView | null;
  inFlight: number;
  requests: number;
}

export interface SystemFacts {
  hostname: string;
  os: string;
  cpuLoadPercent: number | null;
  memory: { totalBytes: number; usedBytes: number } | null;
  stateDirFreeBytes: number | null;
  uptimeSeconds: number;
  processUptimeSeconds: number;
  node: string;
}

export interface ConnectorStatus {
  connectorId: string | null;
  tenant: string | null;
  group: string | null;
  version: string;
  paired: boolean;
  pairedAt: string | null;
  cloudUrl: string | null;
  ready: boolean;
  /** Why not ready (absent when ready). */
  notReadyReason?: string;
  tunnel: {
    state: TunnelStateName;
    since: string | null;
    rttMs: number | null;
    /** Tunnel protocol version of the live session (docs/protocol.md §11); null when not connected. */
    protocol: number | null;
    reconnects: number;
    activeStreams: number;
    retryAt: string | null;
    lastError: { code: string; message: string; at: string } | null;
  };
  certificate: CertView | null;
  targets: TargetStatus[];
  pendingTargets: ManagedView[];
  managedTargets: ManagedView[];
  system: SystemFacts;
  recentProblems: RecentEntry[];
}

export function certView(c: { subject: string; issuer: string; notAfter: string; fingerprint256: string }, now: number): CertView {
  const daysLeft = Math.floor((Date.parse(c.notAfter) - now) / 86_400_000);
  return { subject: c.subject, issuer: c.issuer, notAfter: c.notAfter, fingerprint256: c.fingerprint256, daysLeft, expiringSoon: daysLeft < 30 };
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function lastError(e: LastError | undefined): ConnectorStatus['tunnel']['lastError'] {
  return e ? { code: e.code, message: e.message, at: new Date(e.at).toISOString() } : null;
}

export function tunnelStatus(paired: boolean, sup: Supervisor | undefined): ConnectorStatus['tunnel'] {
  if (!paired || !sup) return { state: 'unpaired', since: null, rttMs: null, protocol: null, reconnects: 0, activeStreams: 0, retryAt: null, lastError: lastError(sup?.lastError) };
  const s = sup.state;
  const state: TunnelStateName =
    s.state === 'connected' ? (sup.session?.state === 'open' ? 'connected' : 'draining') : s.state === 'connecting' ? 'connecting' : s.state === 'refused' ? 'refused' : s.state === 'stopped' ? 'stopped' : 'disconnected';
  return {
    state,
    since: iso(s.since),
    rttMs: sup.session?.rttMs ?? null,
    protocol: sup.session?.version ?? null,
    reconnects: sup.reconnects,
    activeStreams: sup.session?.activeStreams ?? 0,
    retryAt: s.state === 'disconnected' ? iso(s.retryAt) : null,
    lastError: lastError(sup.lastError),
  };
}

export function targetStatus(t: Target, now: number): TargetStatus {
  const h = t.health;
  return {
    id: t.id,
    baseUrl: t.baseUrl.toString(),
    origin: t.origin,
    reachable: h ? h.reachable : null,
    // How long a failed check took is not a latency.
    latencyMs: h?.reachable ? h.latencyMs : null,
    lastStatus: t.stats.lastStatus ?? h?.status ?? null,
    checkStatus: h?.status ?? null,
    checkedAt: h?.checkedAt ?? null,
    error: h?.error ? { code: h.error.code, message: h.error.message } : null,
    tls: h?.peerCert ? certView(h.peerCert, now) : null,
    inFlight: t.stats.inFlight,
    requests: t.stats.requests,
  };
}

/** Ready = paired and connected, and (when required) every target answered its last check. */
export function readiness(s: Pick<ConnectorStatus, 'paired' | 'tunnel' | 'targets'>, requireTargets: boolean): { ready: boolean; reason?: string } {
  if (!s.paired) return { ready: false, reason: 'not paired' };
  if (s.tunnel.state !== 'connected') {
    return { ready: false, reason: `tunnel ${s.tunnel.state}${s.tunnel.lastError ? `: ${s.tunnel.lastError.message}` : ''}` };
  }
  if (requireTargets) {
    const down = s.targets.filter((t) => t.reachable !== true);
    if (down.length > 0) return { ready: false, reason: `target${down.length > 1 ? 's' : ''} not reachable: ${down.map((t) => t.id).join(', ')}` };
    // Reachable, but every call would be refused: the credentials are wrong or expired.
    const refused = s.targets.filter((t) => t.checkStatus === 401 || t.checkStatus === 403);
    if (refused.length > 0) return { ready: false, reason: `credentials rejected by ${refused.map((t) => `${t.id} (HTTP ${t.checkStatus})`).join(', ')}` };
  }
  return { ready: true };
}

// ---- system facts (systeminformation is slow: cached) ---------------------------------------

let factsCache: { at: number; dir: string; facts: SystemFacts } | undefined;

export async function systemFacts(stateDir: string): Promise<SystemFacts> {
  const now = Date.now();
  if (factsCache && factsCache.dir === stateDir && now - factsCache.at < 10_000) {
    return { ...factsCache.facts, processUptimeSeconds: Math.round(process.uptime()) };
  }
  const [os, load, mem, fs, time] = await Promise.all([
    si.osInfo().catch(() => undefined),
    si.currentLoad().catch(() => undefined),
    si.mem().catch(() => undefined),
    si.fsSize().catch(() => undefined),
    Promise.resolve(si.time()),
  ]);
  // The filesystem holding the state dir: the longest mount point that prefixes it.
  const mount = (fs ?? []).filter((f) => stateDir === f.mount || stateDir.startsWith(f.mount.endsWith('/') ? f.mount : `${f.mount}/`)).sort((a, b) => b.mount.length - a.mount.length)[0];
  const facts: SystemFacts = {
    hostname: os?.hostname ?? 'unknown',
    os: os ? `${os.distro} ${os.release} (${os.kernel}, ${os.arch})` : 'unknown',
    cpuLoadPercent: load ? Math.round(load.currentLoad * 10) / 10 : null,
    memory: mem ? { totalBytes: mem.total, usedBytes: mem.active } : null,
    stateDirFreeBytes: mount ? mount.available : null,
    uptimeSeconds: Math.round(Number(time.uptime)),
    processUptimeSeconds: Math.round(process.uptime()),
    node: process.version,
  };
  factsCache = { at: now, dir: stateDir, facts };
  return facts;
}

export interface StatusSources {
  identity(): { connectorId: string; tenant: string; group: string; pairedAt: string; cloudUrl: string; certificate: string } | undefined;
  supervisor(): Supervisor | undefined;
  targets(): Target[];
  managed(): Promise<ManagedView[]>;
  recent(): RecentEntry[];
  stateDir: string;
  cloudUrlOverride?: string;
  requireTargets: boolean;
}

export async function collectStatus(src: StatusSources): Promise<ConnectorStatus> {
  const now = Date.now();
  const id = src.identity();
  const managed = await src.managed().catch(() => []);
  let certificate: CertView | null = null;
  if (id) {
    const x = new X509Certificate(id.certificate);
    certificate = certView({ subject: x.subject.replace(/\n/g, ', '), issuer: x.issuer.replace(/\n/g, ', '), notAfter: new Date(x.validTo).toISOString(), fingerprint256: x.fingerprint256 }, now);
  }
  const base = {
    paired: id !== undefined,
    tunnel: tunnelStatus(id !== undefined, src.supervisor()),
    targets: src.targets().map((t) => targetStatus(t, now)),
  };
  const r = readiness(base, src.requireTargets);
  const status: ConnectorStatus = {
    connectorId: id?.connectorId ?? null,
    tenant: id?.tenant ?? null,
    group: id?.group ?? null,
    version: VERSION,
    pairedAt: id?.pairedAt ?? null,
    cloudUrl: src.cloudUrlOverride ?? id?.cloudUrl ?? null,
    ready: r.ready,
    ...base,
    certificate,
    pendingTargets: managed.filter((m) => m.state === 'pending'),
    managedTargets: managed,
    system: await systemFacts(src.stateDir),
    recentProblems: src.recent(),
  };
  if (r.reason) status.notReadyReason = r.reason;
  // Whatever a message carries, status output never carries a secret.
  return redact(status);
}
