/**
 * Soak (issue 7, not CI): a real cloud, a real connector and an HTTPS upstream (bench/backend.ts,
 * answers after 50-200 ms) as separate processes; N relayed requests in flight the whole time, with a
 * fault every --fault-every seconds, in turn:
 *
 *   kill-connector  kill -9 the connector, start it again at once
 *   term-cloud      SIGTERM the cloud (drains for drainTimeoutSeconds = 5), start it again
 *   stall-upstream  SIGSTOP the upstream for --stall seconds (> the target's 10 s timeout), then SIGCONT
 *
 * Every minute it prints throughput, answers by code (UEM status, or status + x-uemlink-error, or the
 * client's network error), hung requests (no answer within the relay timeout + 5 s; they are then
 * aborted) and the RSS of the cloud and the connector. At the end: totals and the RSS slope after
 * warm-up (MiB per minute, least squares; a restarted process starts a new segment, so the slope is
 * the pooled within-segment slope, skipping each segment's first --segment-warmup seconds), and
 * whether it is flat (|slope| < --flat MiB/min).
 *
 *   node dist/bench/soak.js [--minutes 10] [--concurrency 1000] [--fault-every 60] [--faults kill-connector,term-cloud,stall-upstream]
 *        [--warmup 1] [--segment-warmup 20] [--stall 15] [--relay-timeout 30] [--post-share 0.1] [--flat 0.5] [--json FILE]
 *
 * Exit code 0 when no request hung, 1 otherwise. Every process it started is stopped at the end.
 */
import { Agent, request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN, makeConnector, startCloud, tempDir, until, type Cloud, type Connector } from '../test/helpers/procs.js';
import { argNum, argValue, loadAverage, log, machine, round, rssMiB, sleep, startBackend, type Backend } from './lib.js';

const MINUTES = argNum('--minutes', 10);
const CONCURRENCY = argNum('--concurrency', 1000);
const FAULT_EVERY_S = argNum('--fault-every', 60);
const FAULTS = (argValue('--faults') ?? 'kill-connector,term-cloud,stall-upstream').split(',').map((s) => s.trim()).filter(Boolean);
const WARMUP_MIN = argNum('--warmup', 1);
const SEGMENT_WARMUP_S = argNum('--segment-warmup', 20);
const STALL_S = argNum('--stall', 15);
const RELAY_TIMEOUT_S = argNum('--relay-timeout', 30);
const POST_SHARE = argNum('--post-share', 0.1);
const FLAT = argNum('--flat', 0.5);
const JSON_OUT = argValue('--json');
const HUNG_MS = (RELAY_TIMEOUT_S + 5) * 1000;
const TARGET_TIMEOUT_MS = 10_000;
const TENANT = 'soak';

for (const f of FAULTS) if (!['kill-connector', 'term-cloud', 'stall-upstream', 'none'].includes(f)) throw new Error(`unknown fault "${f}"`);

// ---------------------------------------------------------------- processes

interface Sample {
  t: number; // ms since start
  pid: number;
  rss: number;
}

class Watched {
  readonly samples: Sample[] = [];
  /** When each pid started (ms since the soak's start). */
  readonly startedAt = new Map<number, number>();
  expectedExit = false;
  unexpectedExits = 0;
  constructor(readonly name: string) {}
}

const t0 = Date.now();
const now = (): number => Date.now() - t0;
const stamp = (): string => {
  const s = Math.floor(now() / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};

let backend: Backend;
let cloud: Cloud;
let conn: Connector;
const wCloud = new Watched('cloud');
const wConn = new Watched('connector');

function watch(w: Watched, pid: number, child: { once(e: 'exit', f: (code: number | null, sig: string | null) => void): unknown }, restart: () => Promise<void>): void {
  w.startedAt.set(pid, now());
  child.once('exit', (code, sig) => {
    if (w.expectedExit || stopping) return;
    w.unexpectedExits++;
    log(`${stamp()}  !! the ${w.name} (pid ${pid}) exited unexpectedly (code ${code}, signal ${sig}); starting it again`);
    void restart().catch((e: unknown) => log(`${stamp()}  !! could not restart the ${w.name}: ${String(e)}`));
  });
}

async function startCloudProc(): Promise<void> {
  await cloud.restart();
  watch(wCloud, cloud.proc.pid, cloud.proc.child, startCloudProc);
}

async function startConnProc(): Promise<void> {
  await conn.start();
  watch(wConn, conn.proc.pid, conn.proc.child, startConnProc);
}

async function connected(): Promise<boolean> {
  const r = await cloud.api('GET', '/api/v1/connectors');
  return r.status === 200 && (r.body.connectors as Array<{ connected: boolean }>).some((c) => c.connected);
}

// ---------------------------------------------------------------- load

interface Bucket {
  answered: number;
  ok: number;
  byCode: Map<string, number>;
  hung: number;
  latencySumMs: number;
}
const newBucket = (): Bucket => ({ answered: 0, ok: 0, byCode: new Map(), hung: 0, latencySumMs: 0 });
let minute = newBucket();
const total = newBucket();
let inFlight = 0;
let stopping = false;
let cloudPort = 0;

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, maxFreeSockets: CONCURRENCY });
const POST_BODY = Buffer.alloc(1024, 7);

function count(code: string, ms: number): void {
  for (const b of [minute, total]) {
    if (code === 'hung') b.hung++;
    else {
      b.answered++;
      b.latencySumMs += ms;
      if (code === '200') b.ok++;
    }
    b.byCode.set(code, (b.byCode.get(code) ?? 0) + 1);
  }
}

/** One relayed request; resolves with its outcome code (never rejects, never outlives HUNG_MS). */
function one(): Promise<string> {
  const post = Math.random() < POST_SHARE;
  const started = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (code: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      count(code, Date.now() - started);
      resolve(code);
    };
    const req = request(
      {
        host: '127.0.0.1',
        port: cloudPort,
        method: post ? 'POST' : 'GET',
        path: post ? `/api/v1/relay/${TENANT}/b/upload` : `/api/v1/relay/${TENANT}/b/slow?ms=125&jitter=75`,
        agent,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(post ? { 'content-type': 'application/octet-stream', 'content-length': String(POST_BODY.length) } : {}) },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const err = res.headers['x-uemlink-error'];
        const code = status === 200 ? '200' : `${status}${typeof err === 'string' ? ` ${err}` : ''}`;
        res.on('data', () => {});
        // A body cut short is not an answer: it is counted as such, never as a 200.
        res.on('close', () => finish(res.complete ? code : `${code} truncated`));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    const timer = setTimeout(() => {
      if (done) return;
      finish('hung');
      req.destroy();
    }, HUNG_MS);
    req.end(post ? POST_BODY : undefined);
  });
}

async function worker(): Promise<void> {
  while (!stopping) {
    inFlight++;
    const code = await one();
    inFlight--;
    // Refused connections (cloud restarting), 503 no_connector and the like answer at once: do not spin.
    if (code !== '200') await sleep(100 + Math.random() * 100);
  }
}

// ---------------------------------------------------------------- faults

interface FaultEvent {
  at: string;
  fault: string;
  recoveredInS: number | null;
}
const events: FaultEvent[] = [];

async function recovered(fault: string, since: number): Promise<void> {
  try {
    await until(connected, 120_000, 'the connector to be connected again');
    const s = round((Date.now() - since) / 1000, 1);
    events[events.length - 1]!.recoveredInS = s;
    log(`${stamp()}  .. ${fault}: connector connected again ${s} s after the fault began`);
  } catch (e) {
    log(`${stamp()}  !! ${fault}: ${String(e)}`);
  }
}

async function injectFault(fault: string): Promise<void> {
  const since = Date.now();
  events.push({ at: stamp(), fault, recoveredInS: null });
  if (fault === 'kill-connector') {
    log(`${stamp()}  >> fault: kill -9 the connector (pid ${conn.proc.pid}) and start it again`);
    wConn.expectedExit = true;
    conn.proc.kill('SIGKILL');
    await conn.proc.wait(10_000).catch(() => undefined);
    wConn.expectedExit = false;
    await startConnProc();
    await recovered(fault, since);
  } else if (fault === 'term-cloud') {
    log(`${stamp()}  >> fault: SIGTERM the cloud (pid ${cloud.proc.pid}; drains up to 5 s) and start it again`);
    wCloud.expectedExit = true;
    cloud.proc.kill('SIGTERM');
    await cloud.proc.wait(30_000).catch(() => cloud.proc.stop());
    wCloud.expectedExit = false;
    await startCloudProc();
    await recovered(fault, since);
  } else if (fault === 'stall-upstream') {
    log(`${stamp()}  >> fault: SIGSTOP the upstream (pid ${backend.pid}) for ${STALL_S} s (target timeout ${TARGET_TIMEOUT_MS / 1000} s)`);
    process.kill(backend.pid, 'SIGSTOP');
    await sleep(STALL_S * 1000);
    process.kill(backend.pid, 'SIGCONT');
    events[events.length - 1]!.recoveredInS = round((Date.now() - since) / 1000, 1);
    log(`${stamp()}  .. stall-upstream: SIGCONT`);
  }
}

// ---------------------------------------------------------------- figures

function fmtCodes(m: Map<string, number>): string {
  const errs = [...m].filter(([c]) => c !== '200').sort((a, b) => b[1] - a[1]);
  return errs.length ? errs.map(([c, n]) => `${c}: ${n}`).join(', ') : '-';
}

/** Pooled within-segment least-squares slope of RSS (MiB) over time (min), with its standard error. */
function slope(w: Watched, fromMs: number): { slope: number; se: number; n: number; segments: Array<{ pid: number; n: number; slope: number; fromMiB: number; toMiB: number }> } {
  const byPid = new Map<number, Sample[]>();
  for (const s of w.samples) {
    if (s.t < fromMs || s.t < (w.startedAt.get(s.pid) ?? 0) + SEGMENT_WARMUP_S * 1000 || s.rss <= 0) continue;
    byPid.set(s.pid, [...(byPid.get(s.pid) ?? []), s]);
  }
  let sxy = 0;
  let sxx = 0;
  let n = 0;
  const segments: Array<{ pid: number; n: number; slope: number; fromMiB: number; toMiB: number }> = [];
  const resid: Array<{ x: number; y: number; b: number }> = [];
  for (const [pid, ss] of byPid) {
    if (ss.length < 3) continue;
    const xs = ss.map((s) => s.t / 60_000);
    const ys = ss.map((s) => s.rss);
    const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
    const my = ys.reduce((a, b) => a + b, 0) / ys.length;
    let a = 0;
    let b = 0;
    xs.forEach((x, i) => {
      a += (x - mx) * (ys[i]! - my);
      b += (x - mx) ** 2;
      resid.push({ x: x - mx, y: ys[i]! - my, b: 0 });
    });
    sxy += a;
    sxx += b;
    n += ss.length;
    segments.push({ pid, n: ss.length, slope: round(b > 0 ? a / b : 0, 3), fromMiB: round(ys[0]!, 1), toMiB: round(ys[ys.length - 1]!, 1) });
  }
  const k = sxx > 0 ? sxy / sxx : 0;
  const sse = resid.reduce((acc, r) => acc + (r.y - k * r.x) ** 2, 0);
  const dof = Math.max(1, n - segments.length - 1);
  const se = sxx > 0 ? Math.sqrt(sse / dof / sxx) : 0;
  return { slope: round(k, 3), se: round(se, 3), n, segments };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const m = machine();
  log(`uemlink soak: ${MINUTES} min, ${CONCURRENCY} concurrent relayed requests (GET /slow 50-200 ms, ${Math.round(POST_SHARE * 100)}% POST 1 KiB), fault every ${FAULT_EVERY_S} s: ${FAULTS.join(' -> ')}`);
  log(`machine: ${m.cpus} x ${m.cpuModel}, ${m.memGiB} GiB, node ${m.node}, load average ${loadAverage().join(' ')} (shared machines make figures noisy)`);
  log(`hung = no answer within ${HUNG_MS / 1000} s (relay timeout ${RELAY_TIMEOUT_S} s + 5 s)\n`);

  backend = await startBackend();
  const streams = Math.max(1024, CONCURRENCY * 2);
  cloud = await startCloud({
    extra: { logLevel: 'warn', drainTimeoutSeconds: 5, relay: { timeoutSeconds: RELAY_TIMEOUT_S }, tunnel: { maxConcurrentStreams: streams } },
  });
  cloudPort = cloud.port;
  watch(wCloud, cloud.proc.pid, cloud.proc.child, startCloudProc);
  const dir = tempDir('uemlink-soak-conn-');
  writeFileSync(join(dir, 'ca.pem'), backend.caPem);
  conn = await makeConnector({
    dir,
    config: {
      logLevel: 'warn',
      drainTimeoutSeconds: 5,
      health: { checkIntervalSeconds: 0 },
      tunnel: { maxConcurrentStreams: streams },
      targets: [{ id: 'b', baseUrl: backend.baseUrl, auth: { type: 'none' }, tls: { caFile: 'ca.pem' }, timeoutMs: TARGET_TIMEOUT_MS, maxConcurrent: Math.min(4096, CONCURRENCY) }],
    },
  });
  const token = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: TENANT })).body.token as string;
  const paired = await conn.pair(token);
  if (paired.code !== 0) throw new Error(`pairing failed: ${paired.stderr}`);
  await startConnProc();
  await until(connected, 30_000, 'the connector');

  const sampler = setInterval(() => {
    for (const [w, p] of [
      [wCloud, cloud.proc],
      [wConn, conn.proc],
    ] as const) {
      if (p.exitCode === undefined) w.samples.push({ t: now(), pid: p.pid, rss: rssMiB(p.pid) });
    }
  }, 5000);

  const endAt = t0 + MINUTES * 60_000;
  const workers = Array.from({ length: CONCURRENCY }, () => worker());
  log(`${stamp()}  load started`);
  log(`\n min  answered    rps      ok  hung  cloud MiB  conn MiB  in flight  errors by code`);

  let lastMinute = Date.now();
  let minuteNo = 0;
  const rows: Array<Record<string, unknown>> = [];
  const printRow = (): void => {
    const dt = (Date.now() - lastMinute) / 1000;
    if (dt < 1) return;
    lastMinute = Date.now();
    minuteNo++;
    const b = minute;
    minute = newBucket();
    const rc = round(rssMiB(cloud.proc.pid), 1);
    const rn = round(rssMiB(conn.proc.pid), 1);
    rows.push({ minute: minuteNo, answered: b.answered, rps: round(b.answered / dt, 0), ok: b.ok, hung: b.hung, cloudRssMiB: rc, connectorRssMiB: rn, errors: Object.fromEntries([...b.byCode].filter(([c]) => c !== '200')) });
    log(
      `${String(minuteNo).padStart(4)}  ${String(b.answered).padStart(8)}  ${String(round(b.answered / dt, 0)).padStart(5)}  ${String(b.ok).padStart(6)}  ${String(b.hung).padStart(4)}  ${String(rc).padStart(9)}  ${String(rn).padStart(8)}  ${String(inFlight).padStart(9)}  ${fmtCodes(b.byCode)}${dt < 55 ? `  (last ${round(dt, 0)} s, requests in flight at the end included)` : ''}`,
    );
  };
  const printer = setInterval(printRow, 60_000);

  // Faults, in turn, at fixed times (k x --fault-every after the load started), until the end.
  let fi = 0;
  const loadStart = Date.now();
  const faultLoop = (async () => {
    for (let k = 1; ; k++) {
      const next = loadStart + k * FAULT_EVERY_S * 1000;
      if (next >= endAt - 10_000 || FAULTS[0] === 'none') return;
      while (Date.now() < next && !stopping) await sleep(250);
      if (stopping) return;
      await injectFault(FAULTS[fi++ % FAULTS.length]!);
    }
  })();

  while (Date.now() < endAt) await sleep(500);
  stopping = true;
  log(`${stamp()}  load stopping; waiting for ${inFlight} requests in flight (at most ${HUNG_MS / 1000} s)`);
  await faultLoop;
  await Promise.all(workers);
  clearInterval(printer);
  printRow();
  clearInterval(sampler);
  const elapsedS = (Date.now() - t0) / 1000;

  // ---- summary
  const from = WARMUP_MIN * 60_000;
  const sc = slope(wCloud, from);
  const sn = slope(wConn, from);
  log(`\n==== summary (${round(elapsedS / 60, 1)} min) ====`);
  log(`answered ${total.answered} (${round(total.answered / elapsedS, 0)}/s), 200: ${total.ok}, mean latency ${round(total.latencySumMs / Math.max(1, total.answered), 0)} ms, hung: ${total.hung}`);
  log(`answers other than 200: ${fmtCodes(total.byCode)}`);
  log(`faults: ${events.map((e) => `${e.at} ${e.fault} (back in ${e.recoveredInS ?? '?'} s)`).join('; ') || 'none'}`);
  log(`unexpected exits: cloud ${wCloud.unexpectedExits}, connector ${wConn.unexpectedExits}`);
  for (const [name, s] of [
    ['cloud', sc],
    ['connector', sn],
  ] as const) {
    // Flat: under the threshold. Otherwise say whether the growth is significant (±2 standard errors).
    const verdict =
      Math.abs(s.slope) < FLAT ? 'flat' : s.slope - 2 * s.se <= 0 && s.slope + 2 * s.se >= 0 ? 'inconclusive: the ±2σ interval includes 0 (run longer)' : s.slope > 0 ? 'GROWING' : 'shrinking';
    log(
      `RSS slope after ${WARMUP_MIN} min warm-up, ${name}: ${s.slope >= 0 ? '+' : ''}${s.slope} MiB/min (± ${round(2 * s.se, 3)}, ${s.n} samples in ${s.segments.length} process lifetime(s): ${s.segments.map((g) => `${g.fromMiB}->${g.toMiB} MiB, ${g.slope >= 0 ? '+' : ''}${g.slope}/min`).join('; ')}) -> ${verdict} (flat = |slope| < ${FLAT} MiB/min)`,
    );
  }
  if (JSON_OUT) {
    writeFileSync(
      JSON_OUT,
      `${JSON.stringify({ when: new Date().toISOString(), machine: m, minutes: MINUTES, concurrency: CONCURRENCY, faultEveryS: FAULT_EVERY_S, faults: events, perMinute: rows, total: { answered: total.answered, ok: total.ok, hung: total.hung, byCode: Object.fromEntries(total.byCode) }, rssSlope: { cloud: sc, connector: sn } }, null, 2)}\n`,
    );
  }

  wConn.expectedExit = true;
  wCloud.expectedExit = true;
  conn.proc.kill('SIGTERM');
  await conn.proc.wait(15_000).catch(() => conn.proc.stop());
  cloud.proc.kill('SIGTERM');
  await cloud.proc.wait(15_000).catch(() => cloud.proc.stop());
  await backend.stop();
  agent.destroy();
  process.exitCode = total.hung === 0 ? 0 : 1;
}

// A stopped upstream ignores SIGTERM until continued: always continue it on the way out.
process.on('exit', () => {
  try {
    if (backend) process.kill(backend.pid, 'SIGCONT');
  } catch {
    /* gone */
  }
});

main().catch((e: unknown) => {
  process.stderr.write(`soak failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  try {
    process.kill(backend.pid, 'SIGCONT');
  } catch {
    /* not started or gone */
  }
  process.exit(1);
});
