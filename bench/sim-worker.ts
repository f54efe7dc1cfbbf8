/**
 * Connector simulator for bench:scale, run as a forked worker (1-4 of them, so the cloud's figures
 * are its own). Each simulated connector is the real tunnel stack minus the daemon: a Supervisor with
 * the connector's Backoff dialling connectTunnel (WebSocket, HELLO/AUTH signed with its key, WELCOME,
 * MuxSession with heartbeats). No streams are opened; these are idle connectors.
 *
 * It also issues connector certificates for bulk seeding (the cloud CA's own `issue`, the code that
 * pairing runs), which is the slow part of creating 10,000 identities.
 *
 * Messages (IPC): init, add, issue, mark, stats, stop; see Msg.
 */
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { ConnectorCA } from '../src/cloud/ca.js';
import { systemClock } from '../src/common/clock.js';
import { silentLogger } from '../src/common/log.js';
import { VERSION } from '../src/common/version.js';
import { Backoff } from '../src/connector/backoff.js';
import { Supervisor } from '../src/connector/supervisor.js';
import { connectTunnel } from '../src/connector/tunnel-client.js';
import { TlsSessionCache } from '../src/transport/ws.js';
import { DEFAULT_LIMITS } from '../src/protocol/messages.js';

export interface SimIdentity {
  id: string;
  key: number;
}

export interface SeedRecord {
  id: string;
  tenant: string;
  group: string;
  hostname: string;
  version: string;
  pairedAt: string;
  certificate: string;
  fingerprint256: string;
  notAfter: string;
  targets: string[];
  managedTargets: never[];
  key: number;
}

export type Msg =
  | { type: 'init'; url: string; keys: string[]; heartbeatMs: number; maxDialing: number; ca?: string; noResume?: boolean }
  | { type: 'add'; ids: SimIdentity[] }
  | { type: 'issue'; reqId: number; dataDir: string; csrs: string[]; count: number; tenant: string }
  | { type: 'mark' }
  | { type: 'stats'; reqId: number; withTimes?: boolean }
  | { type: 'stop' };

export interface SimStats {
  total: number;
  connected: number;
  /** Started, never connected yet (initial dials, paced). */
  dialing: number;
  queued: number;
  refused: number;
  /** Dial failures by error code since the last mark. */
  errors: Record<string, number>;
  /** Connectors back since the mark, and when (epoch ms) each one's first session after it began. */
  back: number;
  /** Of those, how many resumed their TLS session on the way back. */
  resumed: number;
  times?: number[];
  /** Dial attempts per connector since the mark (index = attempts, value = connectors). */
  attempts?: number[];
}

interface Sim {
  id: string;
  sup: Supervisor;
  everConnected: boolean;
  connected: boolean;
  backAt: number | undefined;
  attempts: number;
  /** Whether its first session after the mark resumed TLS (undefined: not back yet). */
  resumedBack: boolean | undefined;
}

let cfg: Extract<Msg, { type: 'init' }> | undefined;
/** The keys parsed once, as the connector does per tunnel (not per dial). */
let keys: KeyObject[] = [];
const sims: Sim[] = [];
const queue: SimIdentity[] = [];
let dialing = 0;
let markAt = 0;
let errors: Record<string, number> = {};
const logger = silentLogger();

function send(m: unknown): void {
  process.send?.(m);
}

function pump(): void {
  const c = cfg!;
  while (dialing < c.maxDialing && queue.length > 0) {
    const ident = queue.shift()!;
    dialing++;
    // Each simulated connector resumes its own TLS sessions, as a real one does (unless --no-resume).
    const tlsSessions = c.noResume ? undefined : new TlsSessionCache();
    const sup = new Supervisor({
      clock: systemClock,
      logger,
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000 }),
      connect: () =>
        connectTunnel({
          url: c.url,
          connectorId: ident.id,
          privateKey: keys[ident.key]!,
          hostname: `sim-${ident.id.slice(3, 11)}`,
          software: `uemlink-connector-sim/${VERSION}`,
          targets: [],
          limits: DEFAULT_LIMITS,
          heartbeatMs: c.heartbeatMs,
          handshakeTimeoutMs: 10_000,
          clock: systemClock,
          ...(c.ca ? { ca: [c.ca] } : {}),
          ...(tlsSessions ? { tlsSessions } : {}),
        }),
    });
    const sim: Sim = { id: ident.id, sup, everConnected: false, connected: false, backAt: undefined, attempts: 0, resumedBack: undefined };
    sup.on('session', (_s, c) => {
      if (markAt > 0 && sim.resumedBack === undefined) sim.resumedBack = c.tls?.resumed ?? false;
    });
    sup.on('state', (s) => {
      if (s.state === 'connecting') sim.attempts++;
      else if (s.state === 'connected') {
        sim.connected = true;
        if (markAt > 0 && sim.backAt === undefined) sim.backAt = Date.now();
        if (!sim.everConnected) {
          sim.everConnected = true;
          dialing--;
          pump();
        }
      } else {
        sim.connected = false;
        if (s.state === 'refused' && !sim.everConnected) {
          sim.everConnected = true; // gives its dialing slot back
          dialing--;
          pump();
        }
        const e = sup.lastError;
        if ((s.state === 'disconnected' || s.state === 'refused') && e && e.at >= markAt) errors[e.code] = (errors[e.code] ?? 0) + 1;
      }
    });
    sims.push(sim);
    sup.start();
  }
}

function stats(withTimes: boolean): SimStats {
  const out: SimStats = {
    total: sims.length + queue.length,
    connected: 0,
    dialing,
    queued: queue.length,
    refused: 0,
    errors,
    back: 0,
    resumed: 0,
  };
  const times: number[] = [];
  const attempts: number[] = [];
  for (const s of sims) {
    if (s.connected) out.connected++;
    if (s.sup.state.state === 'refused') out.refused++;
    if (s.backAt !== undefined) {
      out.back++;
      if (s.resumedBack === true) out.resumed++;
      if (withTimes) times.push(s.backAt);
    }
    if (withTimes) attempts[s.attempts] = (attempts[s.attempts] ?? 0) + 1;
  }
  if (withTimes) {
    out.times = times;
    out.attempts = Array.from(attempts, (v) => v ?? 0);
  }
  return out;
}

async function issue(m: Extract<Msg, { type: 'issue' }>): Promise<SeedRecord[]> {
  const { ca } = await ConnectorCA.loadOrCreate(m.dataDir);
  const out: SeedRecord[] = [];
  const now = new Date().toISOString();
  for (let i = 0; i < m.count; i++) {
    const id = `cn_${randomBytes(10).toString('hex')}`;
    const key = i % m.csrs.length;
    const issued = ca.issue(m.csrs[key]!, { connectorId: id, tenant: m.tenant, group: 'default' }, 365);
    out.push({
      id,
      tenant: m.tenant,
      group: 'default',
      hostname: `sim-${id.slice(3, 11)}`,
      version: VERSION,
      pairedAt: now,
      certificate: issued.certificatePem,
      fingerprint256: issued.info.fingerprint256,
      notAfter: issued.info.notAfter,
      targets: [],
      managedTargets: [],
      key,
    });
  }
  return out;
}

process.on('message', (raw) => {
  const m = raw as Msg;
  switch (m.type) {
    case 'init':
      cfg = m;
      keys = m.keys.map((k) => createPrivateKey(k));
      send({ type: 'ready' });
      break;
    case 'add':
      queue.push(...m.ids);
      pump();
      break;
    case 'issue':
      void issue(m).then(
        (records) => send({ type: 'issued', reqId: m.reqId, records }),
        (e: unknown) => send({ type: 'issued', reqId: m.reqId, error: String(e) }),
      );
      break;
    case 'mark':
      markAt = Date.now();
      errors = {};
      for (const s of sims) {
        s.backAt = undefined;
        s.attempts = 0;
        s.resumedBack = undefined;
      }
      break;
    case 'stats':
      send({ type: 'stats', reqId: m.reqId, stats: stats(m.withTimes === true) });
      break;
    case 'stop':
      void Promise.all(sims.map((s) => s.sup.stop(0))).finally(() => process.exit(0));
      setTimeout(() => process.exit(0), 5000).unref();
      break;
  }
});
process.on('disconnect', () => process.exit(0));
