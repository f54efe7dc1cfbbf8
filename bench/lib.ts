/**
 * Shared pieces of the benchmarks (bench/run.ts, bench/scale.ts): /proc sampling (RSS, CPU seconds,
 * process trees), wrk runs with exact percentiles, the backend and OpenSSH-tunnel child processes,
 * the uemlink pair (cloud + connector as real processes), and small formatting helpers.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestPki } from '../src/common/pki.js';
import { NODE_FLAGS } from '../src/common/v8-tuning.js';
import { ADMIN_TOKEN, Proc, freePort, makeConnector, sleep, startCloud, tempDir, until, type Cloud, type Connector } from '../test/helpers/procs.js';

export const MiB = 1024 * 1024;
/** The project root (this file runs from dist/bench/). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RESULTS = join(ROOT, 'bench', 'results');
export { ADMIN_TOKEN, sleep };

// ---------------------------------------------------------------- arguments

export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
export function argNum(name: string, def: number): number {
  const v = argValue(name);
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) ? n : def;
}
export function argList(name: string, def: number[]): number[] {
  const v = argValue(name);
  if (!v) return def;
  const l = v.split(',').map(Number).filter((n) => Number.isFinite(n) && n > 0);
  return l.length ? l : def;
}
export function argFlag(name: string): boolean {
  return process.argv.includes(name);
}

// ---------------------------------------------------------------- /proc

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** utime + stime of one process, in seconds (0 once it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state=0 ppid=1 ... utime=11 stime=12
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** read and write system calls of one process so far (/proc/PID/io; 0 once it is gone). */
export function syscalls(pid: number): number {
  try {
    const t = readFileSync(`/proc/${pid}/io`, 'utf8');
    return Number(/^syscr: (\d+)/m.exec(t)?.[1] ?? 0) + Number(/^syscw: (\d+)/m.exec(t)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** `pid` and all its descendants (scan of /proc; this kernel has no task/children files). */
export function processTree(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [c, p] of parent) if (p === out[i] && !out.includes(c)) out.push(c);
  return out;
}

/** utime+stime+cutime+cstime (reaped children included), in seconds. */
function cpuWithChildren(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
  } catch {
    return 0;
  }
}

function machineBusyS(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0);
  return { busy: busy / CLK_TCK, total: (busy + f[3]! + f[4]!) / CLK_TCK };
}

/**
 * How busy the machine was, and how much of that CPU was spent by processes outside this harness's
 * process tree (another job on a shared machine makes a run noisy; this says so).
 */
export class MachineLoad {
  private readonly m0 = machineBusyS();
  private readonly own0 = this.own();
  private own(): number {
    return processTree(process.pid).reduce((a, p) => a + cpuWithChildren(p), 0);
  }
  stop(): { busyPct: number; foreignCpuS: number } {
    const m = machineBusyS();
    const own = this.own();
    const total = m.total - this.m0.total;
    const busy = m.busy - this.m0.busy;
    return { busyPct: round(total > 0 ? (busy / total) * 100 : 0, 1), foreignCpuS: round(Math.max(0, busy - (own - this.own0)), 2) };
  }
}

/**
 * Waits (up to `maxS`) until the machine is quiet: three 2-second windows in a row in which it is
 * under `pct`% busy. Returns whether it got quiet. On a shared machine this avoids measuring someone
 * else's test run.
 */
export async function waitQuiet(maxS: number, pct = 15): Promise<boolean> {
  const t0 = Date.now();
  let calm = 0;
  let said = false;
  while (Date.now() - t0 < maxS * 1000) {
    const a = machineBusyS();
    await sleep(2000);
    const b = machineBusyS();
    const busy = ((b.busy - a.busy) / Math.max(0.001, b.total - a.total)) * 100;
    calm = busy < pct ? calm + 1 : 0;
    if (calm >= 3) return true;
    if (!said || (Date.now() - t0) % 30_000 < 2100) {
      log(`  waiting for a quiet machine (${busy.toFixed(0)}% busy)...`);
      said = true;
    }
  }
  return false;
}

export function loadAverage(): number[] {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

export interface Watched {
  name: string;
  /** The pids to add up (a tree for sshd, one pid otherwise). Evaluated at start. */
  pids: () => number[];
}

export interface ProcFigures {
  cpuS: number;
  /** read + write system calls (socket and file I/O) over the interval. */
  syscalls: number;
  rssBaseMiB: number;
  rssPeakMiB: number;
  rssGrowthMiB: number;
}

/**
 * CPU seconds and RSS of named processes over an interval: CPU as the difference of utime+stime,
 * RSS as the peak of samples every `everyMs` (summed over a tree).
 */
export class ProcSampler {
  private readonly pids: Map<string, number[]>;
  private readonly cpu0 = new Map<string, number>();
  private readonly sys0 = new Map<string, number>();
  private readonly base = new Map<string, number>();
  private readonly peak = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  /** CPU% (of one core) per sample interval, per process, for peak-CPU figures. */
  readonly cpuSeries = new Map<string, Array<{ t: number; pct: number }>>();
  private lastCpu = new Map<string, { t: number; cpu: number }>();

  constructor(watched: Watched[], everyMs = 100) {
    this.pids = new Map(watched.map((w) => [w.name, w.pids()]));
    for (const [n, ps] of this.pids) {
      const c = ps.reduce((a, p) => a + cpuSeconds(p), 0);
      const r = ps.reduce((a, p) => a + rssMiB(p), 0);
      this.cpu0.set(n, c);
      this.sys0.set(n, ps.reduce((a, p) => a + syscalls(p), 0));
      this.base.set(n, r);
      this.peak.set(n, r);
      this.cpuSeries.set(n, []);
      this.lastCpu.set(n, { t: performance.now(), cpu: c });
    }
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    const now = performance.now();
    for (const [n, ps] of this.pids) {
      const r = ps.reduce((a, p) => a + rssMiB(p), 0);
      if (r > this.peak.get(n)!) this.peak.set(n, r);
      const c = ps.reduce((a, p) => a + cpuSeconds(p), 0);
      const last = this.lastCpu.get(n)!;
      if (now - last.t >= 240) {
        this.cpuSeries.get(n)!.push({ t: now, pct: ((c - last.cpu) / ((now - last.t) / 1000)) * 100 });
        this.lastCpu.set(n, { t: now, cpu: c });
      }
    }
  }

  stop(): Record<string, ProcFigures> {
    clearInterval(this.timer);
    this.sample();
    const out: Record<string, ProcFigures> = {};
    for (const [n, ps] of this.pids) {
      const cpu = ps.reduce((a, p) => a + cpuSeconds(p), 0) - this.cpu0.get(n)!;
      const base = this.base.get(n)!;
      const peak = this.peak.get(n)!;
      const sys = ps.reduce((a, p) => a + syscalls(p), 0) - this.sys0.get(n)!;
      out[n] = { cpuS: round(cpu, 2), syscalls: sys, rssBaseMiB: round(base, 1), rssPeakMiB: round(peak, 1), rssGrowthMiB: round(peak - base, 1) };
    }
    return out;
  }

  peakCpuPct(name: string): number {
    return Math.max(0, ...(this.cpuSeries.get(name) ?? []).map((s) => s.pct));
  }
}

// ---------------------------------------------------------------- child processes

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    p.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Children this harness started, killed if it exits abnormally. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
});
// Ctrl-C or a timeout: exit normally so that every child (here and in test/helpers/procs.ts) is killed.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

/** Says so on stderr when a uemlink process dies while the benchmark still needs it. */
function watchExit(name: string, proc: Proc, expected: { value: boolean }): void {
  proc.child.once('exit', (code, signal) => {
    if (expected.value) return;
    process.stderr.write(`\n!! the ${name} process (pid ${proc.pid}) exited unexpectedly: code ${code}, signal ${signal}\n${proc.stderr.slice(-2000)}${proc.raw.slice(-2000)}\n`);
  });
}

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}

function exited(c: ChildProcess, timeoutMs: number): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      c.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface Backend {
  pid: number;
  port: number;
  baseUrl: string;
  caPem: string;
  caFile: string;
  /** TLS connections accepted and requests served so far. */
  stats(): Promise<{ connections: number; requests: number }>;
  stop(): Promise<void>;
}

/**
 * The HTTPS backend (bench/backend.ts) in its own process, so that neither the client nor the
 * harness shares its event loop.
 */
export async function startBackend(env: Record<string, string> = {}): Promise<Backend> {
  const { c, info } = await spawnNode<{ port: number; caPem: string }>('backend', [join(ROOT, 'dist', 'bench', 'backend.js')], env);
  const caFile = join(tempDir('uemlink-bench-ca-'), 'ca.pem');
  writeFileSync(caFile, info.caPem);
  return {
    pid: c.pid!,
    port: info.port,
    baseUrl: `https://127.0.0.1:${info.port}`,
    caPem: info.caPem,
    caFile,
    async stats() {
      const r = await run('curl', ['-sS', '--cacert', caFile, `https://127.0.0.1:${info.port}/stats`], 10_000);
      return JSON.parse(r.stdout) as { connections: number; requests: number };
    },
    async stop() {
      c.kill('SIGTERM');
      await exited(c, 5000);
    },
  };
}

/** A Node program of the benchmark in its own process; resolves with the JSON line it prints once ready. */
async function spawnNode<T>(what: string, args: string[], env: Record<string, string> = {}): Promise<{ c: ChildProcess; info: T }> {
  const c = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } }));
  let buf = '';
  const info = await new Promise<T>((resolve, reject) => {
    c.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) resolve(JSON.parse(buf.slice(0, i)) as T);
    });
    c.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)));
  });
  return { c, info };
}

export interface NodeProxy {
  pid: number;
  baseUrl: string;
  /** The CA clients must trust for its certificate. */
  caFile: string;
  stop(): Promise<void>;
}

/**
 * The simplest Node HTTPS reverse proxy in front of `backend` (bench/node-proxy.ts), with the
 * daemons' node flags: the floor for a relay written in Node.
 */
export async function startNodeProxy(backend: Backend): Promise<NodeProxy> {
  const dir = tempDir('uemlink-bench-node-proxy-');
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, writeCloudTls(dir));
  const { c, info } = await spawnNode<{ port: number }>('the node proxy', [...NODE_FLAGS, join(ROOT, 'dist', 'bench', 'node-proxy.js'), dir, backend.baseUrl, backend.caFile]);
  return {
    pid: c.pid!,
    baseUrl: `https://127.0.0.1:${info.port}`,
    caFile,
    async stop() {
      c.kill('SIGTERM');
      await exited(c, 5000);
    },
  };
}

export interface SshTunnel {
  /** The forwarded port on the "cloud side". */
  port: number;
  /** The script, sshd (listener and session processes) and the ssh client. */
  pids(): number[];
  stop(): Promise<void>;
}

/** The OpenSSH reverse tunnel peer (bench/ssh-reverse-tunnel.sh, adapted from ../shared/bench/). */
export async function startSshTunnel(backendPort: number): Promise<SshTunnel> {
  const fwd = await freePort();
  const sshPort = await freePort();
  const script = join(ROOT, 'bench', 'ssh-reverse-tunnel.sh');
  const c = track(spawn('bash', [script, String(backendPort), String(fwd), String(sshPort)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await until(
    async () => {
      if (c.exitCode !== null) throw new Error(`ssh tunnel script exited: ${out}`);
      return /ssh -R ready/.test(out) && (await portOpen(fwd));
    },
    15_000,
    'the ssh -R forward',
  );
  return {
    port: fwd,
    pids: () => processTree(c.pid!),
    async stop() {
      c.kill('SIGTERM');
      await exited(c, 5000);
    },
  };
}

/**
 * Writes a certificate for 127.0.0.1/localhost and its key (0600) as `tls.crt`/`tls.key` in a
 * cloud's directory (its config says `tls: { certFile: 'tls.crt', keyFile: 'tls.key' }`) and
 * returns the PEM clients must trust. `rsa`: RSA-2048 issued by a generated CA; `ec`: a
 * self-signed ECDSA P-256 certificate from openssl (node-forge signs RSA only).
 */
export function writeCloudTls(dir: string, key: 'rsa' | 'ec' = 'rsa'): string {
  const crt = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  if (key === 'ec') {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', crt], { stdio: 'ignore' });
    chmodSync(keyFile, 0o600);
    return readFileSync(crt, 'utf8');
  }
  const pki = createTestPki(['localhost', '127.0.0.1']);
  writeFileSync(crt, pki.certPem);
  writeFileSync(keyFile, pki.keyPem, { mode: 0o600 });
  return pki.caCertPem;
}

export interface Uemlink {
  cloud: Cloud;
  conn: Connector;
  /** http(s)://cloud/api/v1/relay/bench/b */
  relayBase: string;
  /** The CA that signed the cloud's certificate (with `tls`), for curl. */
  cloudCaFile?: string;
  authHeader: string;
  stop(graceful?: boolean): Promise<void>;
}

/** A cloud and a connector (real `uemlink` processes) relaying to `backend` as target "b". */
export async function startUemlink(
  backend: Backend,
  o: {
    env?: Record<string, string>;
    cloudExtra?: Record<string, unknown>;
    connectorExtra?: Record<string, unknown>;
    target?: Record<string, unknown>;
    /** Extra node flags for both processes, e.g. ['--cpu-prof', '--cpu-prof-dir=...']. */
    nodeFlags?: string[];
    /**
     * The cloud serves HTTPS (a generated certificate), so the relay API is https:// and the
     * tunnel wss://, as in production; without it both are plain on loopback.
     */
    tls?: boolean;
  } = {},
): Promise<Uemlink> {
  // Proc's `wrap` prefixes the command; a shell re-execs node with the flags (same pid), since
  // --cpu-prof is not allowed in NODE_OPTIONS.
  const wrap = o.nodeFlags?.length ? ['sh', '-c', `exec "$0" ${o.nodeFlags.map((f) => `'${f}'`).join(' ')} "$@"`] : undefined;
  const cloudDir = tempDir('uemlink-bench-cloud-');
  const cloudCa = o.tls ? writeCloudTls(cloudDir) : undefined;
  if (cloudCa) writeFileSync(join(cloudDir, 'ca.pem'), cloudCa);
  const cloud = await startCloud({
    dir: cloudDir,
    extra: {
      logLevel: 'warn',
      relay: { timeoutSeconds: 120, maxRequestBytes: 4096 * MiB },
      ...(cloudCa ? { tls: { certFile: 'tls.crt', keyFile: 'tls.key' } } : {}),
      ...o.cloudExtra,
    },
    ...(cloudCa ? { scheme: 'https' as const, ca: cloudCa } : {}),
    ...(o.env ? { env: o.env } : {}),
    ...(wrap ? { wrap } : {}),
  });
  const dir = tempDir('uemlink-bench-conn-');
  writeFileSync(join(dir, 'ca.pem'), backend.caPem);
  if (cloudCa) writeFileSync(join(dir, 'cloud-ca.pem'), cloudCa);
  const conn = await makeConnector({
    dir,
    config: {
      logLevel: 'warn',
      health: { checkIntervalSeconds: 0 },
      targets: [{ id: 'b', baseUrl: backend.baseUrl, auth: { type: 'none' }, tls: { caFile: 'ca.pem' }, timeoutMs: 120_000, ...o.target }],
      ...(cloudCa ? { cloud: { caFile: 'cloud-ca.pem' } } : {}),
      ...o.connectorExtra,
    },
    ...(o.env ? { env: o.env } : {}),
  });
  const token = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'bench' })).body.token as string;
  const paired = await conn.pair(token);
  if (paired.code !== 0) throw new Error(`pairing failed: ${paired.stderr}`);
  if (wrap) conn.proc = new Proc(['connector', 'run', '--config', conn.configFile], o.env ?? {}, wrap);
  else await conn.start();
  const stopping = { value: false };
  watchExit('cloud', cloud.proc, stopping);
  watchExit('connector', conn.proc, stopping);
  await until(async () => (await cloud.api('GET', '/api/v1/connectors')).body.connectors.some((x: { connected: boolean }) => x.connected), 20_000, 'the connector');
  return {
    cloud,
    conn,
    relayBase: `${cloud.url}/api/v1/relay/bench/b`,
    ...(cloudCa ? { cloudCaFile: join(cloudDir, 'ca.pem') } : {}),
    authHeader: `Bearer ${ADMIN_TOKEN}`,
    async stop(graceful = false) {
      stopping.value = true;
      if (graceful) {
        // SIGTERM: both drain and exit by themselves (needed for --cpu-prof to write its file).
        conn.proc.kill('SIGTERM');
        await conn.proc.wait(30_000).catch(() => conn.proc.stop());
        cloud.proc.kill('SIGTERM');
        await cloud.proc.wait(30_000).catch(() => cloud.proc.stop());
        return;
      }
      await conn.proc.stop();
      await cloud.proc.stop();
    },
  };
}

// ---------------------------------------------------------------- wrk

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
}

let luaFile: string | undefined;
function wrkLua(): string {
  if (luaFile) return luaFile;
  luaFile = join(tempDir('uemlink-bench-wrk-'), 'report.lua');
  // Exact percentiles (µs) from wrk's own histogram, as one JSON line.
  writeFileSync(
    luaFile,
    `done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%d,"duration":%d,"p50":%d,"p90":%d,"p99":%d,"mean":%f,"max":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
`,
  );
  return luaFile;
}

export async function runWrk(o: { url: string; connections: number; threads?: number; durationS: number; headers?: Record<string, string>; timeoutS?: number }): Promise<WrkResult> {
  const threads = o.threads ?? Math.min(2, o.connections);
  const args = ['-t', String(threads), '-c', String(o.connections), '-d', `${o.durationS}s`, '--timeout', `${o.timeoutS ?? 10}s`, '-s', wrkLua()];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(o.url);
  const r = await run('wrk', args, (o.durationS + 60) * 1000);
  const line = r.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (r.code !== 0 || !line) throw new Error(`wrk failed (${r.code}): ${r.stderr}${r.stdout}`);
  const j = JSON.parse(line.slice(8)) as Record<string, number>;
  const durationS = j.duration! / 1e6;
  return {
    requests: j.requests!,
    durationS: round(durationS, 2),
    rps: round(j.requests! / durationS, 0),
    p50Ms: round(j.p50! / 1000, 3),
    p90Ms: round(j.p90! / 1000, 3),
    p99Ms: round(j.p99! / 1000, 3),
    meanMs: round(j.mean! / 1000, 3),
    maxMs: round(j.max! / 1000, 3),
    errors: { connect: j.connect!, read: j.read!, write: j.write!, status: j.status!, timeout: j.timeout! },
  };
}

export function errorCount(w: WrkResult): number {
  return w.errors.connect + w.errors.read + w.errors.write + w.errors.status + w.errors.timeout;
}

// ---------------------------------------------------------------- numbers and text

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Right-aligned columns; the first column left-aligned. */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  const cells = [head, ...rows.map((r) => r.map((c) => String(c)))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r, ri) => {
      const line = r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
      return ri === 0 ? `${line}\n${w.map((x) => '-'.repeat(x)).join('  ')}` : line;
    })
    .join('\n');
}

export function machine(): { cpus: number; cpuModel: string; memGiB: number; node: string; kernel: string } {
  let kernel = '';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    /* not linux */
  }
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memGiB: round(totalmem() / 1024 ** 3, 1), node: process.version, kernel };
}

export function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

/**
 * The V8 options the cloud's systemd unit ships with (a bounded heap): benchmarks measure the cloud
 * as it runs in production. `--cloud-node-options "..."` overrides them ("" for Node's defaults).
 */
export function cloudNodeOptions(): string {
  const i = process.argv.indexOf('--cloud-node-options');
  if (i >= 0) return process.argv[i + 1] ?? '';
  const unit = readFileSync(join(ROOT, 'systemd', 'uemlink-cloud.service'), 'utf8');
  return /^Environment=NODE_OPTIONS=(.*)$/m.exec(unit)?.[1]?.trim() ?? '';
}
