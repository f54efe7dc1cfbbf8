/**
 * What one core buys: small GETs at 64 connections over TLS with processes pinned to CPUs
 * (`taskset`), to answer two questions the shared-core benchmark cannot.
 *
 * 1. **ceiling**: each daemon alone on CPU 1, everything else (the other daemon, wrk, the backend)
 *    on CPU 0. Its CPU per request and share of its core give the rate one Node thread could carry
 *    (extrapolated linearly: the machine has no spare core to saturate it with).
 * 2. **layouts**: uemlink and ssh -R with the scheduler free (all on 0-1) and split (the relay's
 *    processes on CPU 1, wrk and the backend on CPU 0), alternating: does pinning change the ratio?
 *
 * Needs at least 2 CPUs and util-linux's `taskset`. Writes bench/results/cores-latest.json.
 *
 *   npm run bench:cores [-- --rounds 3 --seconds 6]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { RESULTS, argNum, cpuSeconds, log, machine, round, runWrk, startBackend, startSshTunnel, startUemlink, table } from './lib.js';

const ROUNDS = Math.max(1, Math.round(argNum('--rounds', 3)));
const SECONDS = Math.max(2, argNum('--seconds', 6));
const CONNECTIONS = 64;

/** Pins every thread of `pid` (-a: V8's and libuv's threads too) to `cpus` ("0", "1", "0-1"). */
function pin(pid: number, cpuList: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Way {
  url: string;
  headers: Record<string, string>;
  pids(): number[];
}

/** One measured wrk run (after a short warm-up in the same layout): req/s and CPU µs per request of `pids`. */
async function measure(way: Way, pids: Record<string, number>): Promise<{ rps: number; p99Ms: number; seconds: number; us: Record<string, number> }> {
  await runWrk({ url: way.url, connections: CONNECTIONS, durationS: 2, headers: way.headers });
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
  const t0 = process.hrtime.bigint();
  const w = await runWrk({ url: way.url, connections: CONNECTIONS, durationS: SECONDS, headers: way.headers });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const us = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, ((cpuSeconds(p) - before[k]!) / w.requests) * 1e6]));
  return { rps: w.rps, p99Ms: w.p99Ms, seconds, us };
}

async function main(): Promise<void> {
  if (cpus().length < 2) throw new Error(`bench:cores needs at least 2 CPUs; this machine has ${cpus().length}`);
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
  } catch {
    throw new Error('bench:cores needs taskset (Debian package util-linux)');
  }
  const backend = await startBackend();
  const u = await startUemlink(backend, { tls: true });
  const ssh = await startSshTunnel(backend.port);
  const uemlink: Way = { url: `${u.relayBase}/small`, headers: { authorization: u.authHeader }, pids: () => [u.cloud.proc.pid, u.conn.proc.pid] };
  const viaSsh: Way = { url: `https://127.0.0.1:${ssh.port}/small`, headers: {}, pids: () => ssh.pids() };
  // wrk is started by this process and inherits its affinity.
  const rest = (cpuList: string): void => {
    pin(process.pid, cpuList);
    pin(backend.pid, cpuList);
  };
  const rel = (way: Way, cpuList: string): void => way.pids().forEach((p) => pin(p, cpuList));

  try {
    log(`bench:cores: GET at ${CONNECTIONS} connections over TLS, ${SECONDS} s per run, ${ROUNDS} rounds`);
    // ---- 1. each daemon alone on CPU 1
    const ceiling: Record<'cloud' | 'connector', Array<{ rps: number; us: number; busyPct: number }>> = { cloud: [], connector: [] };
    rel(viaSsh, '0'); // idle here, but kept off the measured daemon's core
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of ['cloud', 'connector'] as const) {
        const alone = name === 'cloud' ? u.cloud.proc.pid : u.conn.proc.pid;
        const other = name === 'cloud' ? u.conn.proc.pid : u.cloud.proc.pid;
        rest('0');
        pin(other, '0');
        pin(alone, '1');
        const m = await measure(uemlink, { alone });
        const us = m.us.alone!;
        ceiling[name].push({ rps: m.rps, us: round(us, 1), busyPct: round(((us * m.rps) / 1e6) * 100, 1) });
        log(`  ${name} alone on CPU 1: ${m.rps} req/s, ${round(us, 1)} µs per request`);
      }
    }
    // ---- 2. free vs split, uemlink and ssh -R alternating
    const layouts: Record<string, Array<{ rps: number; p99Ms: number; relayUs: number; backendUs: number }>> = {};
    const order: Array<[string, Way, 'free' | 'split']> = [
      ['uemlink', uemlink, 'free'],
      ['ssh -R', viaSsh, 'free'],
      ['uemlink', uemlink, 'split'],
      ['ssh -R', viaSsh, 'split'],
    ];
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, way, layout] of r % 2 ? [...order].reverse() : order) {
        rest(layout === 'free' ? '0-1' : '0');
        rel(uemlink, '0-1');
        rel(viaSsh, '0-1');
        if (layout === 'split') rel(way, '1');
        const relayPids = Object.fromEntries(way.pids().map((p, i) => [`r${i}`, p]));
        const m = await measure(way, { ...relayPids, backend: backend.pid });
        const relayUs = Object.entries(m.us).reduce((a, [k, v]) => (k === 'backend' ? a : a + v), 0);
        (layouts[`${name} ${layout}`] ??= []).push({ rps: m.rps, p99Ms: m.p99Ms, relayUs: round(relayUs, 1), backendUs: round(m.us.backend!, 1) });
        log(`  ${name} ${layout}: ${m.rps} req/s, relay ${round(relayUs, 1)} µs per request`);
      }
    }

    const ceilRows = (['cloud', 'connector'] as const).map((n) => {
      const us = ceiling[n].map((x) => x.us);
      return [n, ceiling[n].map((x) => x.rps).join(' / '), us.join(' / '), ceiling[n].map((x) => x.busyPct).join(' / '), `${Math.round(1e6 / Math.max(...us))}–${Math.round(1e6 / Math.min(...us))}`];
    });
    log('\nEach daemon alone on CPU 1 (everything else on CPU 0)');
    log(table(['daemon', 'req/s per round', 'µs per request', '% of its core', 'ceiling req/s (linear)'], ceilRows));
    const med = (xs: number[]): number => round(median(xs), 1);
    const layoutRows = Object.entries(layouts).map(([k, xs]) => [k, med(xs.map((x) => x.rps)), med(xs.map((x) => x.relayUs)), med(xs.map((x) => x.backendUs)), med(xs.map((x) => x.p99Ms))]);
    log(`\nLayouts (medians of ${ROUNDS}; split = the relay's processes on CPU 1, wrk and the backend on CPU 0)`);
    log(table(['way layout', 'req/s', 'relay µs/req', 'backend µs/req', 'p99 ms'], layoutRows));
    const ratio = (l: string): number => round(median(layouts[`uemlink ${l}`]!.map((x) => x.rps)) / median(layouts[`ssh -R ${l}`]!.map((x) => x.rps)), 2);
    log(`\nuemlink / ssh -R: free ${ratio('free')}x, split ${ratio('split')}x`);

    mkdirSync(RESULTS, { recursive: true });
    const file = join(RESULTS, 'cores-latest.json');
    writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), rounds: ROUNDS, seconds: SECONDS, ceiling, layouts, ratio: { free: ratio('free'), split: ratio('split') } }, null, 2)}\n`);
    log(`wrote ${file}`);
  } finally {
    await u.stop();
    await ssh.stop();
    await backend.stop();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench:cores: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
