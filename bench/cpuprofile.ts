/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by module, optionally for
 * a time window only (µs on CLOCK_MONOTONIC, which both V8's profile timestamps and
 * process.hrtime use on Linux, so a harness can cut out the window of one workload).
 *
 *   node dist/bench/cpuprofile.js FILE.cpuprofile [--top 30]
 *   node dist/bench/cpuprofile.js FILE.cpuprofile --callers FUNCTION_NAME   (who calls it)
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FnRow {
  fn: string;
  where: string;
  selfMs: number;
  /** Share of busy (non-idle) time. */
  selfPct: number;
  /** Inclusive time (the function anywhere on the stack), share of busy time. */
  totalPct: number;
}

export interface ProfileSummary {
  file: string;
  windowMs: number;
  busyMs: number;
  idleMs: number;
  /** Whether the requested window lay within the profile (else the whole profile was used). */
  windowed: boolean;
  top: FnRow[];
  byModule: Array<{ module: string; selfMs: number; selfPct: number }>;
}

const ROOT_URL = new URL('../../', import.meta.url).href;

function shortUrl(url: string): string {
  let u = url;
  if (u.startsWith(ROOT_URL)) u = u.slice(ROOT_URL.length);
  else if (u.startsWith('file://')) u = u.slice(7);
  u = u.replace(/^dist\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) u = u.slice(nm + 'node_modules/'.length);
  return u;
}

function moduleOf(cf: CallFrame): string {
  if (cf.url === '') {
    if (cf.functionName.startsWith('(')) return cf.functionName; // (garbage collector), (program), (idle)
    return '(native)';
  }
  const u = shortUrl(cf.url);
  if (u.startsWith('node:')) return 'node core';
  if (u.startsWith('src/') || u.startsWith('test/') || u.startsWith('bench/')) return u.replace(/\.js$/, '.ts');
  const m = /^(@[^/]+\/[^/]+|[^/]+)/.exec(u);
  return m ? `npm:${m[1]}` : u;
}

export function summarizeProfile(file: string, window?: { fromUs: number; toUs: number }, topN = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  let from = p.startTime;
  let to = p.endTime;
  let windowed = false;
  if (window && window.fromUs >= p.startTime - 1e6 && window.toUs <= p.endTime + 1e6 && window.toUs > window.fromUs) {
    from = window.fromUs;
    to = window.toUs;
    windowed = true;
  }
  const key = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'}\u0000${n.callFrame.url ? `${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : ''}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const mods = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    // A sample stands for the time until the next one.
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const n = byId.get(p.samples[i]!)!;
    if (n.callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    const k = key(n);
    self.set(k, (self.get(k) ?? 0) + dt);
    const m = moduleOf(n.callFrame);
    mods.set(m, (mods.get(m) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const k2 = key(byId.get(id)!);
      if (seen.has(k2)) continue;
      seen.add(k2);
      total.set(k2, (total.get(k2) ?? 0) + dt);
    }
  }
  const pct = (ms: number): number => (busy > 0 ? Math.round((ms / busy) * 1000) / 10 : 0);
  const top = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([k, ms]) => {
      const [fn, where] = k.split('\u0000') as [string, string];
      return { fn, where, selfMs: Math.round(ms), selfPct: pct(ms), totalPct: pct(total.get(k) ?? 0) };
    });
  const byModule = [...mods.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([module, ms]) => ({ module, selfMs: Math.round(ms), selfPct: pct(ms) }));
  return { file, windowMs: Math.round((to - from) / 1000), busyMs: Math.round(busy), idleMs: Math.round(idle), windowed, top, byModule };
}

/**
 * Who calls `fn` (self time of samples whose leaf is `fn`, grouped by the `depth` frames above it):
 * e.g. which code path constructs an Error per request.
 */
export function callersOf(file: string, fn: string, depth = 4, topN = 8): Array<{ stack: string; ms: number }> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const label = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url ? `${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
  const agg = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!)!;
    if (n.callFrame.functionName !== fn) continue;
    const chain: string[] = [];
    for (let id = parent.get(n.id); id !== undefined && chain.length < depth; id = parent.get(id)) chain.push(label(byId.get(id)!));
    const k = chain.join('  <-  ');
    agg.set(k, (agg.get(k) ?? 0) + (p.timeDeltas[i + 1] ?? 0) / 1000);
  }
  return [...agg.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([stack, ms]) => ({ stack, ms: Math.round(ms) }));
}

export function formatSummary(title: string, s: ProfileSummary, topN = 20): string {
  const lines = [
    `${title}: ${s.busyMs} ms busy, ${s.idleMs} ms idle in a ${s.windowMs} ms window${s.windowed ? '' : ' (whole profile)'}`,
    '  self%  total%  self ms  function  (file:line of the compiled JS)',
  ];
  for (const r of s.top.slice(0, topN)) {
    lines.push(`  ${r.selfPct.toFixed(1).padStart(5)}  ${r.totalPct.toFixed(1).padStart(6)}  ${String(r.selfMs).padStart(7)}  ${r.fn}  ${r.where}`);
  }
  lines.push('  by module (self time):');
  for (const m of s.byModule.slice(0, 12)) lines.push(`  ${m.selfPct.toFixed(1).padStart(5)}%  ${String(m.selfMs).padStart(7)} ms  ${m.module}`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/cpuprofile.js FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  const i = process.argv.indexOf('--top');
  const n = i >= 0 ? Number(process.argv[i + 1]) || 25 : 25;
  const c = process.argv.indexOf('--callers');
  if (c >= 0) {
    const fn = process.argv[c + 1] ?? '';
    process.stdout.write(`callers of ${fn} (self ms by the frames above it):\n`);
    for (const r of callersOf(file, fn, 4, n)) process.stdout.write(`${String(r.ms).padStart(7)} ms  ${r.stack}\n`);
  } else process.stdout.write(`${formatSummary(file, summarizeProfile(file, undefined, n), n)}\n`);
}
