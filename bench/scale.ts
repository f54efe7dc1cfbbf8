/**
 * `npm run bench:scale`: how the costs of uemlink grow with load (issue 6, scale workloads).
 *
 *   streams  one tunnel, 1 -> 1,000 in-flight slow requests (the backend holds each --hold-ms, default
 *            1000): throughput, latency, cloud/connector RSS and CPU per in-flight request. Real cloud
 *            and connector processes; wrk as the client; the target's maxConcurrent is raised to 1024
 *            (its default of 64 would cap the in-flight requests at 64).
 *   idle     idle connectors on one cloud process, 100 -> 10,000 (steps): RSS per connector, time to
 *            connect each batch, cloud CPU while idle (heartbeats every 15 s both ways, the default).
 *            Connectors are simulated by 1-4 worker processes (bench/sim-worker.ts) that run the
 *            real tunnel client (Supervisor + Backoff + connectTunnel) per identity. Identities: a few
 *            through the HTTP pairing API (timed, at an empty and at a full store), the rest seeded in
 *            bulk into the cloud's state store with certificates from the cloud's own CA (`issue`).
 *   storm    --storm (default 2,000) connected, kill -9 the cloud, restart it at once: time until all
 *            are back, cloud CPU (peak, 250 ms samples) and RSS, dial failures by code, and a
 *            histogram of reconnect times (does the backoff spread them?).
 *
 *   npm run bench:scale [-- --parts streams,idle,storm] [--streams 1,10,100,500,1000] [--hold-ms 1000]
 *        [--duration 10] [--connectors 100,1000,5000,10000] [--idle-seconds 30] [--workers 2]
 *        [--storm 2000] [--storm-down 0] [--trust caFile|env] [--tls [--tls-key rsa|ec] [--no-resume] [--max-tls-handshakes N]] [--max-pending N] [--wait-quiet SECONDS]
 *   --tls: every part with the cloud over TLS (relay API https://, wss:// tunnel), as deployed; the
 *   certificate's key RSA-2048 (default) or ECDSA P-256.
 *
 * Everything is bounded: each wait has a time limit, and all processes are stopped at the end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCloudStore } from '../src/cloud/state.js';
import { createCsr, generateRsaKeyPair } from '../src/common/pki.js';
import { VERSION } from '../src/common/version.js';
import { tunnelUrl } from '../src/connector/pair.js';
import { startCloud, tempDir, type Cloud } from '../test/helpers/procs.js';
import {
  cloudNodeOptions,
  MachineLoad,
  RESULTS,
  ROOT,
  ProcSampler,
  argFlag,
  argList,
  argNum,
  argValue,
  errorCount,
  loadAverage,
  log,
  machine,
  mean,
  percentile,
  round,
  rssMiB,
  runWrk,
  sleep,
  startBackend,
  startUemlink,
  table,
  waitQuiet,
  writeCloudTls,
} from './lib.js';

/** The cloud as its systemd unit runs it (see cloudNodeOptions). */
function cloudEnv(): { env?: Record<string, string> } {
  const o = cloudNodeOptions();
  return o ? { env: { NODE_OPTIONS: o } } : {};
}
import type { Msg, SeedRecord, SimIdentity, SimStats } from './sim-worker.js';

const PARTS = (argValue('--parts') ?? 'streams,idle,storm').split(',').map((s) => s.trim());
/**
 * --tls: the cloud serves HTTPS with a generated certificate and the simulated connectors dial
 * wss:// trusting its CA, as deployed (a TLS handshake per connection on top of the tunnel's).
 */
const TLS = argFlag('--tls');
/**
 * --tls-key rsa|ec: the cloud certificate's key, RSA-2048 (default) or ECDSA P-256. A full TLS
 * handshake costs the server one signature with it, far cheaper with ECDSA; in a 10,000-connector
 * storm the cloud's CPU came out the same with either (docs/performance.md).
 */
const TLS_KEY = argValue('--tls-key') === 'ec' ? 'ec' : 'rsa';
/**
 * --no-resume: the simulated connectors make a full TLS handshake on every dial, as before TLS
 * session resumption (they resume by default, as the connector does).
 */
const NO_RESUME = argFlag('--no-resume');
/** --max-pending N: the cloud's maxPendingHandshakes (storm control after TLS; default the cloud's). */
const MAX_PENDING = argValue('--max-pending') ? argNum('--max-pending', 4096) : undefined;
/** --max-tls-handshakes N: the cloud's tls.maxConcurrentHandshakes (the gate before TLS; default the cloud's). */
const MAX_TLS = argValue('--max-tls-handshakes') ? argNum('--max-tls-handshakes', 1024) : undefined;

/** The cloud for the idle and storm parts, over TLS with --tls; `ca` is what clients trust. */
async function scaleCloud(): Promise<{ cloud: Cloud; ca?: string }> {
  const extra = { logLevel: 'warn', ...(MAX_PENDING ? { maxPendingHandshakes: MAX_PENDING } : {}) };
  if (!TLS) return { cloud: await startCloud({ ...cloudEnv(), extra }) };
  const dir = tempDir('uemlink-scale-cloud-');
  const ca = writeCloudTls(dir, TLS_KEY);
  log(`cloud over TLS: ${TLS_KEY === 'rsa' ? 'RSA-2048' : 'ECDSA P-256'} certificate, tunnel wss://, TLS session resumption ${NO_RESUME ? 'off (--no-resume)' : 'on'}`);
  const cloud = await startCloud({ ...cloudEnv(), dir, scheme: 'https', ca, extra: { ...extra, tls: { certFile: 'tls.crt', keyFile: 'tls.key', ...(MAX_TLS ? { maxConcurrentHandshakes: MAX_TLS } : {}) } } });
  return { cloud, ca };
}
const TENANT = 'bench';
const HEARTBEAT_MS = 15_000;

function fds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------- (a) streams on one tunnel

async function streams(): Promise<unknown> {
  const steps = argList('--streams', [1, 10, 100, 500, 1000]);
  const hold = argNum('--hold-ms', 1000);
  const dur = argNum('--duration', 10);
  const jitter = Math.round(hold / 5);
  const trustEnv = argValue('--trust') === 'env';
  log(`\n== (a) concurrent streams on one tunnel${TLS ? ' (cloud over TLS: relay API https://, tunnel wss://)' : ' (cloud without TLS; --tls for https:// and wss://)'}: ${steps.join(', ')} in-flight requests held ${hold}±${jitter} ms by the backend, ${dur} s each (ideal = in-flight x ${dur} s / hold; the first round trip of each connection is ramp-up)`);
  const backend = await startBackend();
  const uem = await startUemlink(backend, {
    tls: TLS,
    target: { maxConcurrent: 1024, ...(trustEnv ? { tls: {} } : {}) },
    ...(trustEnv ? { env: { NODE_EXTRA_CA_CERTS: backend.caFile } } : {}),
  });
  const rows: Array<Record<string, number>> = [];
  try {
    await runWrk({ url: `${uem.relayBase}/small`, connections: 16, durationS: 2, headers: { authorization: uem.authHeader } });
    await sleep(1000);
    const base = { cloud: rssMiB(uem.cloud.proc.pid), connector: rssMiB(uem.conn.proc.pid) };
    log(`baseline after warm-up: cloud ${base.cloud.toFixed(1)} MiB, connector ${base.connector.toFixed(1)} MiB`);
    for (const n of steps) {
      const s = new ProcSampler([
        { name: 'cloud', pids: () => [uem.cloud.proc.pid] },
        { name: 'connector', pids: () => [uem.conn.proc.pid] },
      ]);
      const ml = new MachineLoad();
      const w = await runWrk({ url: `${uem.relayBase}/slow?ms=${hold}&jitter=${jitter}`, connections: n, threads: Math.min(2, n), durationS: dur, timeoutS: Math.ceil(hold / 1000) * 4 + 10, headers: { authorization: uem.authHeader } });
      const f = s.stop();
      const load = ml.stop();
      const ideal = (n * 1000) / hold;
      const row = {
        inFlight: n,
        rps: w.rps,
        idealRps: round(ideal, 1),
        efficiency: round(w.rps / ideal, 2),
        p50Ms: w.p50Ms,
        p99Ms: w.p99Ms,
        errors: errorCount(w),
        cloudPeakMiB: f.cloud!.rssPeakMiB,
        connectorPeakMiB: f.connector!.rssPeakMiB,
        cloudKiBPerStream: round(((f.cloud!.rssPeakMiB - base.cloud) * 1024) / n, 1),
        connectorKiBPerStream: round(((f.connector!.rssPeakMiB - base.connector) * 1024) / n, 1),
        cloudCpuS: f.cloud!.cpuS,
        connectorCpuS: f.connector!.cpuS,
        cpuMsPerRequest: round(((f.cloud!.cpuS + f.connector!.cpuS) * 1000) / Math.max(1, w.requests), 3),
        foreignCpuS: load.foreignCpuS,
      };
      rows.push(row);
      log(
        `  ${String(n).padStart(5)} in flight: ${row.rps} req/s (ideal ${row.idealRps}), p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, errors ${row.errors}; ` +
          `RSS cloud ${row.cloudPeakMiB} MiB, connector ${row.connectorPeakMiB} MiB; CPU cloud ${row.cloudCpuS} s, connector ${row.connectorCpuS} s`,
      );
      await sleep(1500);
    }
  } finally {
    await uem.stop();
    await backend.stop();
  }
  log(`\nstreams: how the costs grow (RSS per stream = (peak - baseline) / in-flight, including the client's HTTP connection at the cloud and the HTTPS connection to the backend at the connector)`);
  log(
    table(
      ['in flight', 'req/s', 'ideal', 'efficiency', 'p50 ms', 'p99 ms', 'errors', 'cloud KiB/stream', 'connector KiB/stream', 'CPU ms/request'],
      rows.map((r) => [r.inFlight!, r.rps!, r.idealRps!, r.efficiency!, r.p50Ms!, r.p99Ms!, r.errors!, r.cloudKiBPerStream!, r.connectorKiBPerStream!, r.cpuMsPerRequest!]),
    ),
  );
  return { holdMs: hold, jitterMs: jitter, durationS: dur, cloudTls: TLS, connectorTrust: trustEnv ? 'NODE_EXTRA_CA_CERTS' : 'tls.caFile', steps: rows };
}

// ---------------------------------------------------------------- simulator pool

class SimPool {
  readonly workers: ChildProcess[] = [];
  private next = 1;
  private waiting = new Map<number, (m: Record<string, unknown>) => void>();

  constructor(n: number) {
    for (let i = 0; i < n; i++) {
      const w = fork(join(ROOT, 'dist', 'bench', 'sim-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      w.on('message', (m: Record<string, unknown>) => {
        const id = m.reqId as number | undefined;
        if (id !== undefined) {
          this.waiting.get(id)?.(m);
          this.waiting.delete(id);
        }
      });
      this.workers.push(w);
    }
    process.on('exit', () => {
      for (const w of this.workers) w.kill('SIGKILL');
    });
  }

  pids(): number[] {
    return this.workers.map((w) => w.pid!);
  }

  private ask(w: ChildProcess, m: Msg & { reqId: number }): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`worker ${w.pid} did not answer ${m.type}`)), 600_000);
      this.waiting.set(m.reqId, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      w.send(m);
    });
  }

  init(url: string, keys: string[], maxDialing: number, ca?: string): void {
    for (const w of this.workers) w.send({ type: 'init', url, keys, heartbeatMs: HEARTBEAT_MS, maxDialing, ...(ca ? { ca } : {}), ...(NO_RESUME ? { noResume: true } : {}) } satisfies Msg);
  }

  add(ids: SimIdentity[]): void {
    const parts: SimIdentity[][] = this.workers.map(() => []);
    ids.forEach((x, i) => parts[i % parts.length]!.push(x));
    this.workers.forEach((w, i) => w.send({ type: 'add', ids: parts[i]! } satisfies Msg));
  }

  mark(): void {
    for (const w of this.workers) w.send({ type: 'mark' } satisfies Msg);
  }

  async issue(dataDir: string, csrs: string[], count: number): Promise<SeedRecord[]> {
    const per = Math.ceil(count / this.workers.length);
    const answers = await Promise.all(
      this.workers.map((w, i) => this.ask(w, { type: 'issue', reqId: this.next++, dataDir, csrs, count: Math.max(0, Math.min(per, count - i * per)), tenant: TENANT })),
    );
    const out: SeedRecord[] = [];
    for (const a of answers) {
      if (a.error) throw new Error(`seeding failed: ${String(a.error)}`);
      out.push(...(a.records as SeedRecord[]));
    }
    return out;
  }

  async stats(withTimes = false): Promise<SimStats> {
    const all = await Promise.all(this.workers.map((w) => this.ask(w, { type: 'stats', reqId: this.next++, withTimes }).then((a) => a.stats as SimStats)));
    const s: SimStats = { total: 0, connected: 0, dialing: 0, queued: 0, refused: 0, errors: {}, back: 0, resumed: 0 };
    if (withTimes) {
      s.times = [];
      s.attempts = [];
    }
    for (const x of all) {
      s.total += x.total;
      s.connected += x.connected;
      s.dialing += x.dialing;
      s.queued += x.queued;
      s.refused += x.refused;
      s.back += x.back;
      s.resumed += x.resumed;
      for (const [k, v] of Object.entries(x.errors)) s.errors[k] = (s.errors[k] ?? 0) + v;
      if (withTimes) {
        s.times!.push(...(x.times ?? []));
        (x.attempts ?? []).forEach((v, i) => (s.attempts![i] = (s.attempts![i] ?? 0) + v));
      }
    }
    if (s.attempts) s.attempts = Array.from(s.attempts, (v) => v ?? 0);
    return s;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exitCode !== null) return resolve();
            const t = setTimeout(() => {
              w.kill('SIGKILL');
              resolve();
            }, 10_000);
            w.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            w.send({ type: 'stop' } satisfies Msg);
          }),
      ),
    );
  }
}

/** Waits until `done(stats)` or the time limit; returns the time it took (ms) and the last stats. */
async function waitFor(pool: SimPool, done: (s: SimStats) => boolean, limitMs: number, what: string): Promise<{ ms: number; stats: SimStats; timedOut: boolean }> {
  const t0 = Date.now();
  let last = Date.now();
  for (;;) {
    const s = await pool.stats();
    if (done(s)) return { ms: Date.now() - t0, stats: s, timedOut: false };
    if (Date.now() - t0 > limitMs) {
      log(`  ${what}: gave up after ${limitMs / 1000} s (${JSON.stringify({ ...s, times: undefined })})`);
      return { ms: Date.now() - t0, stats: s, timedOut: true };
    }
    if (Date.now() - last > 10_000) {
      last = Date.now();
      log(`  ... ${what}: ${s.connected}/${s.total} connected after ${((Date.now() - t0) / 1000).toFixed(0)} s ${JSON.stringify(s.errors)}`);
    }
    await sleep(100);
  }
}

interface Keys {
  pems: string[];
  csrs: string[];
}

function makeKeys(n: number): Keys {
  const pems: string[] = [];
  const csrs: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = generateRsaKeyPair(2048);
    pems.push(k.privateKeyPem);
    csrs.push(createCsr(k.privateKeyPem, { CN: `sim-${i}` }));
  }
  return { pems, csrs };
}

async function pairViaApi(cloud: Cloud, keys: Keys, n: number): Promise<{ ids: SimIdentity[]; ms: number[] }> {
  const ids: SimIdentity[] = [];
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const tok = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: TENANT });
    if (tok.status !== 201) throw new Error(`token: HTTP ${tok.status} ${JSON.stringify(tok.body)}`);
    const key = i % keys.csrs.length;
    const res = await cloud.api('POST', '/api/v1/pair', { token: tok.body.token, csr: keys.csrs[key], hostname: `sim-api-${i}`, version: VERSION });
    const body = res.body as { connectorId?: string };
    if (res.status !== 201 || !body.connectorId) throw new Error(`pair: HTTP ${res.status} ${JSON.stringify(body)}`);
    ms.push(performance.now() - t0);
    ids.push({ id: body.connectorId, key });
  }
  return { ids, ms };
}

/** Bulk pairing: certificates from the cloud's CA (in the workers), one write to the state store. */
async function seed(cloud: Cloud, pool: SimPool, keys: Keys, n: number): Promise<{ ids: SimIdentity[]; issueS: number; writeS: number }> {
  const dataDir = join(cloud.dir, 'data');
  const t0 = Date.now();
  const records = await pool.issue(dataDir, keys.csrs, n);
  const t1 = Date.now();
  await openCloudStore(dataDir).update((s) => {
    s.tenants[TENANT] ??= { createdAt: new Date().toISOString() };
    for (const r of records) {
      const { key: _key, ...rec } = r;
      s.connectors[r.id] = rec;
    }
  });
  const t2 = Date.now();
  return { ids: records.map((r) => ({ id: r.id, key: r.key })), issueS: round((t1 - t0) / 1000, 1), writeS: round((t2 - t1) / 1000, 1) };
}

// ---------------------------------------------------------------- (b) idle connectors

async function idle(): Promise<unknown> {
  const steps = argList('--connectors', [100, 1000, 5000, 10000]).sort((a, b) => a - b);
  const max = steps[steps.length - 1]!;
  const idleS = argNum('--idle-seconds', 30);
  const nWorkers = Math.min(4, Math.max(1, argNum('--workers', 2)));
  const apiFirst = Math.min(50, max);
  const apiLater = Math.min(20, Math.max(0, max - apiFirst));
  log(`\n== (b) idle connectors on one cloud: steps ${steps.join(', ')}; ${nWorkers} simulator workers; ${idleS} s idle window per step`);
  const { cloud, ca } = await scaleCloud();
  const pool = new SimPool(nWorkers);
  const out: Record<string, unknown> = {};
  try {
    let t = Date.now();
    const keys = makeKeys(4);
    log(`4 RSA key pairs and CSRs in ${((Date.now() - t) / 1000).toFixed(1)} s (identities share them; each has its own certificate and id)`);
    const a1 = await pairViaApi(cloud, keys, apiFirst);
    const seeded = await seed(cloud, pool, keys, max - apiFirst - apiLater);
    log(`seeded ${seeded.ids.length} identities: certificates ${seeded.issueS} s (cloud CA issue() in ${nWorkers} workers), one store write ${seeded.writeS} s`);
    const a2 = await pairViaApi(cloud, keys, apiLater);
    const pairing = {
      atEmptyStore: { n: apiFirst, meanMs: round(mean(a1.ms), 1), p90Ms: round(percentile([...a1.ms].sort((x, y) => x - y), 90), 1) },
      atFullStore: { n: apiLater, storeConnectors: max - apiLater, meanMs: round(mean(a2.ms), 1), p90Ms: round(percentile([...a2.ms].sort((x, y) => x - y), 90), 1) },
      seeding: seeded,
    };
    out.pairing = { ...pairing, seeding: { n: seeded.ids.length, issueS: seeded.issueS, writeS: seeded.writeS } };
    log(
      `pairing through the HTTP API (token + pair, sequential): ${pairing.atEmptyStore.meanMs} ms each with 0-${apiFirst} connectors in the store, ` +
        `${pairing.atFullStore.meanMs} ms each with ~${pairing.atFullStore.storeConnectors}`,
    );
    const ids = [...a1.ids, ...seeded.ids, ...a2.ids];
    // The cloud loads the (now large) store on its next read; make that happen before the baseline.
    await cloud.api('GET', `/api/v1/connectors/${ids[0]!.id}`);
    await sleep(2000);
    const cpid = cloud.proc.pid;
    const base = { rss: rssMiB(cpid), fds: fds(cpid) };
    const b0 = new ProcSampler([{ name: 'cloud', pids: () => [cpid] }]);
    await sleep(5000);
    const baseIdle = b0.stop();
    log(`cloud baseline with ${ids.length} identities in the store and no tunnels: RSS ${base.rss.toFixed(1)} MiB, CPU ${round((baseIdle.cloud!.cpuS / 5) * 100, 2)}% idle`);
    pool.init(tunnelUrl(cloud.url), keys.pems, 64, ca);
    await sleep(500);
    const rows: Array<Record<string, number | boolean>> = [];
    let prev = 0;
    let prevRss = base.rss;
    for (const n of steps) {
      const batch = ids.slice(prev, n);
      const sc = new ProcSampler([{ name: 'cloud', pids: () => [cpid] }, { name: 'workers', pids: () => pool.pids() }]);
      t = Date.now();
      pool.add(batch);
      const w = await waitFor(pool, (s) => s.connected >= n, 300_000, `connecting ${n}`);
      const connect = sc.stop();
      // Presence is flushed to the store 5 s after connects; let that pass before the idle window.
      await sleep(6500);
      const si = new ProcSampler([{ name: 'cloud', pids: () => [cpid] }, { name: 'workers', pids: () => pool.pids() }], 500);
      const ml = new MachineLoad();
      await sleep(idleS * 1000);
      const f = si.stop();
      const load = ml.stop();
      const after = await pool.stats();
      const rss = rssMiB(cpid);
      const row = {
        connectors: n,
        connected: after.connected,
        batch: batch.length,
        connectS: round(w.ms / 1000, 2),
        handshakesPerS: round(batch.length / (w.ms / 1000), 0),
        connectCloudCpuS: connect.cloud!.cpuS,
        cloudCpuMsPerHandshake: round((connect.cloud!.cpuS * 1000) / batch.length, 2),
        cloudRssMiB: round(rss, 1),
        cloudRssPeakMiB: round(Math.max(f.cloud!.rssPeakMiB, connect.cloud!.rssPeakMiB), 1),
        cloudKiBPerConnector: round(((rss - base.rss) * 1024) / n, 1),
        cloudKiBPerConnectorIncremental: round(((rss - prevRss) * 1024) / batch.length, 1),
        cloudFds: fds(cpid),
        idleCloudCpuPct: round((f.cloud!.cpuS / idleS) * 100, 2),
        idleCloudCpuMsPerConnectorPerMin: round((f.cloud!.cpuS * 1000 * (60 / idleS)) / n, 3),
        idleWorkersCpuPct: round((f.workers!.cpuS / idleS) * 100, 1),
        idleForeignCpuS: load.foreignCpuS,
        timedOut: w.timedOut,
      };
      rows.push(row);
      log(
        `  ${String(n).padStart(6)} connectors: batch of ${batch.length} connected in ${row.connectS} s (${row.handshakesPerS}/s, cloud ${row.cloudCpuMsPerHandshake} ms CPU each); ` +
          `cloud RSS ${row.cloudRssMiB} MiB (${row.cloudKiBPerConnector} KiB/connector), ${row.cloudFds} fds; idle CPU ${row.idleCloudCpuPct}% of a core ` +
          `(${row.idleCloudCpuMsPerConnectorPerMin} ms per connector per minute); workers ${row.idleWorkersCpuPct}%`,
      );
      prev = n;
      prevRss = rss;
    }
    log(`\nidle connectors: how the costs grow (heartbeat: a PING each way every ${HEARTBEAT_MS / 1000} s per tunnel)`);
    log(
      table(
        ['connectors', 'connect s', 'handshakes/s', 'cloud ms CPU/handshake', 'cloud RSS MiB', 'KiB/connector', 'KiB/connector (step)', 'idle CPU %', 'ms CPU/connector/min'],
        rows.map((r) => [
          r.connectors as number,
          r.connectS as number,
          r.handshakesPerS as number,
          r.cloudCpuMsPerHandshake as number,
          r.cloudRssMiB as number,
          r.cloudKiBPerConnector as number,
          r.cloudKiBPerConnectorIncremental as number,
          r.idleCloudCpuPct as number,
          r.idleCloudCpuMsPerConnectorPerMin as number,
        ]),
      ),
    );
    const top = rows[rows.length - 1]!;
    log(`target: ${max} idle connectors < 2 GiB cloud RSS: ${(top.cloudRssPeakMiB as number) < 2048 ? 'met' : 'MISSED'} (${top.cloudRssPeakMiB} MiB peak)`);
    Object.assign(out, { workers: nWorkers, idleSeconds: idleS, heartbeatMs: HEARTBEAT_MS, baseline: { rssMiB: round(base.rss, 1), fds: base.fds }, steps: rows });
  } finally {
    await pool.stop();
    await cloud.proc.stop();
  }
  return out;
}

// ---------------------------------------------------------------- (c) reconnect storm

function histogram(times: number[], bucketMs: number): Array<{ fromS: number; count: number }> {
  if (times.length === 0) return [];
  const n = Math.floor(Math.max(...times) / bucketMs) + 1;
  const h = Array.from({ length: n }, (_, i) => ({ fromS: (i * bucketMs) / 1000, count: 0 }));
  for (const t of times) h[Math.floor(t / bucketMs)]!.count++;
  return h;
}

async function storm(): Promise<unknown> {
  const n = argNum('--storm', 2000);
  const nWorkers = Math.min(4, Math.max(1, argNum('--workers', 2)));
  const downS = argNum('--storm-down', 0);
  log(`\n== (c) reconnect storm: ${n} connected, kill -9 the cloud, restart it ${downS > 0 ? `after ${downS} s` : 'at once'}`);
  const { cloud, ca } = await scaleCloud();
  const pool = new SimPool(nWorkers);
  try {
    const keys = makeKeys(4);
    const seeded = await seed(cloud, pool, keys, n);
    await cloud.api('GET', `/api/v1/connectors/${seeded.ids[0]!.id}`);
    pool.init(tunnelUrl(cloud.url), keys.pems, 64, ca);
    pool.add(seeded.ids);
    const first = await waitFor(pool, (s) => s.connected >= n, 300_000, `connecting ${n}`);
    log(`${n} connected in ${(first.ms / 1000).toFixed(1)} s (paced, 64 dials in flight per worker); settling`);
    await sleep(7000);
    const pid0 = cloud.proc.pid;
    const rssBefore = rssMiB(pid0);
    pool.mark();
    await sleep(50);
    const tKill = Date.now();
    cloud.proc.kill('SIGKILL');
    await cloud.proc.wait(10_000);
    if (downS > 0) await sleep(downS * 1000);
    await cloud.restart();
    const tListen = Date.now();
    const pid = cloud.proc.pid;
    // The simulated connectors share the machine: their CPU says whether they or the cloud set the pace.
    const sampler = new ProcSampler([{ name: 'cloud', pids: () => [pid] }, { name: 'sims', pids: () => pool.workers.map((w) => w.pid!) }], 50);
    const ml = new MachineLoad();
    const w = await waitFor(pool, (s) => s.back >= n, 180_000, 'reconnecting');
    const f = sampler.stop();
    const load = ml.stop();
    const st = await pool.stats(true);
    // Session start times (epoch ms, same clock in every process), relative to the kill.
    const times = (st.times ?? []).map((x) => x - tKill).sort((a, b) => a - b);
    const tAll = tKill + (times[times.length - 1] ?? w.ms);
    const series = sampler.cpuSeries.get('cloud') ?? [];
    const simSeries = sampler.cpuSeries.get('sims') ?? [];
    // Per second (4 samples of ~250 ms) from the restart: which side set the pace (the cloud, or the simulators it shares the cores with).
    const perSecond = (xs: Array<{ pct: number }>): number[] => {
      const out: number[] = [];
      for (let i = 0; i < xs.length; i += 4) out.push(round(mean(xs.slice(i, i + 4).map((x) => x.pct)), 0));
      return out;
    };
    const bucket = times.length && times[times.length - 1]! > 60_000 ? 5000 : 1000;
    const hist = histogram(times, bucket);
    const res = {
      connectors: n,
      cloudRestartS: round((tListen - tKill) / 1000, 2),
      allBackAfterKillS: round((tAll - tKill) / 1000, 2),
      allBackAfterListenS: round((tAll - tListen) / 1000, 2),
      back: st.back,
      tlsResumed: st.resumed,
      timedOut: w.timedOut,
      reconnectMs: { min: times[0], p50: percentile(times, 50), p90: percentile(times, 90), p99: percentile(times, 99), max: times[times.length - 1] },
      dialFailuresByCode: st.errors,
      attemptsPerConnector: st.attempts,
      cloudCpuS: f.cloud!.cpuS,
      simulatorCpuS: f.sims!.cpuS,
      cloudPeakCpuPct: round(Math.max(0, ...series.map((x) => x.pct)), 0),
      cloudMeanCpuPct: round(mean(series.map((x) => x.pct)), 0),
      cloudRssBeforeMiB: round(rssBefore, 1),
      cloudRssPeakMiB: f.cloud!.rssPeakMiB,
      histogramBucketS: bucket / 1000,
      histogram: hist,
      cpuSeries: series.map((x) => round(x.pct, 0)),
      cpuPerSecond: { cloud: perSecond(series), simulators: perSecond(simSeries) },
      machine: load,
    };
    log(
      `cloud back up ${res.cloudRestartS} s after the kill; all ${n} reconnected ${res.allBackAfterKillS} s after the kill (${res.allBackAfterListenS} s after it listened)${w.timedOut ? ' — TIMED OUT' : ''}`,
    );
    if (TLS) log(`${st.resumed} of ${st.back} resumed their TLS session`);
    log(`reconnect times from the kill: p50 ${res.reconnectMs.p50} ms, p90 ${res.reconnectMs.p90} ms, p99 ${res.reconnectMs.p99} ms, max ${res.reconnectMs.max} ms`);
    log(`cloud CPU during the storm: ${res.cloudCpuS} s, peak ${res.cloudPeakCpuPct}% (250 ms samples), mean ${res.cloudMeanCpuPct}%; RSS ${res.cloudRssBeforeMiB} MiB before, ${res.cloudRssPeakMiB} MiB peak after restart`);
    log(`the ${pool.workers.length} simulator processes used ${res.simulatorCpuS} s of CPU meanwhile (${round((100 * res.simulatorCpuS) / Math.max(0.001, w.ms / 1000), 0)}% of a core; they share the machine with the cloud)`);
    log(`CPU per second from the restart, % of a core: cloud ${res.cpuPerSecond.cloud.join(' ')}`);
    log(`                                        simulators ${res.cpuPerSecond.simulators.join(' ')}`);
    log(`dial failures by code: ${JSON.stringify(res.dialFailuresByCode)}; dial attempts per connector (index = attempts): ${JSON.stringify(res.attemptsPerConnector)}`);
    log(`histogram of reconnect times (${bucket / 1000} s buckets, from the kill):`);
    const peak = Math.max(1, ...hist.map((h) => h.count));
    for (const h of hist) log(`  ${`${h.fromS}-${h.fromS + bucket / 1000} s`.padStart(9)} ${String(h.count).padStart(5)} ${'#'.repeat(Math.round((h.count / peak) * 50))}`);
    log(`target: all back within 60 s of the restart: ${!w.timedOut && res.allBackAfterListenS <= 60 ? 'met' : 'MISSED'}`);
    return res;
  } finally {
    await pool.stop();
    await cloud.proc.stop();
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const waitS = argNum('--wait-quiet', 0);
  if (waitS > 0 && !(await waitQuiet(waitS))) log(`the machine did not get quiet within ${waitS} s; measuring anyway`);
  const la = loadAverage();
  log(`load average ${la.join(' ')}${la[0]! > 1 ? ' — the machine is busy: figures will be noisy (run on a quiet machine)' : ''}`);
  log(`cloud NODE_OPTIONS: ${cloudNodeOptions() || '(none)'} (from systemd/uemlink-cloud.service; --cloud-node-options overrides)`);
  const ml = new MachineLoad();
  const out: Record<string, unknown> = { date: new Date().toISOString(), machine: machine(), loadAverageAtStart: la, parts: PARTS };
  if (PARTS.includes('streams')) out.streams = await streams();
  if (PARTS.includes('idle')) out.idle = await idle();
  if (PARTS.includes('storm')) out.storm = await storm();
  out.elapsedS = round((Date.now() - t0) / 1000, 1);
  const load = ml.stop();
  out.machineLoad = load;
  log(`\nmachine ${load.busyPct}% busy over the whole run; processes outside this benchmark used ${load.foreignCpuS} CPU s${load.foreignCpuS > 5 ? ' (noisy: run again on a quiet machine)' : ''}`);
  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, 'scale-latest.json');
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  log(`\nwrote ${file}; elapsed ${out.elapsedS} s`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench:scale failed: ${(e as Error).stack}\n`);
    process.exit(1);
  },
);
