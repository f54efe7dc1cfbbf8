/**
 * The protocol layer alone: CPU per small GET exchange for both sessions (cloud and connector) in
 * one process over the in-memory transport, with `--concurrency` exchanges in flight, no sockets,
 * TLS or HTTP. It isolates what the frames, streams and flow control cost, which the end-to-end
 * benchmark cannot separate from the VM's noise.
 *
 *   npm run bench:protocol [-- --seconds 3 --concurrency 64 --runs 3]
 */
// First, as in the daemons: V8 settings that must precede any allocation (src/common/v8-tuning.ts).
import '../src/cli/v8-flags.js';
import type { RequestHead } from '../src/protocol/messages.js';
import type { MuxStream } from '../src/protocol/stream.js';
import { sessionPair } from '../test/helpers/sessions.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) {
    process.stderr.write(`${name} must be a positive number\n`);
    process.exit(2);
  }
  return v;
}

const SECONDS = arg('--seconds', 3);
const CONCURRENCY = Math.round(arg('--concurrency', 64));
const RUNS = Math.round(arg('--runs', 3));

const p = sessionPair();
// ~200 B of JSON, as the end-to-end benchmark's backend answers.
const body = Buffer.from(JSON.stringify({ ok: true, devices: [1, 2, 3], pad: 'x'.repeat(150) }));
p.connector.on('stream', (st: MuxStream) => {
  st.resume();
  st.on('end', () => {
    st.respond({ status: 200, headers: [['content-type', 'application/json']] });
    st.end(body);
  });
});
const head: RequestHead = { method: 'GET', path: '/api/mdm/devices?page=1', headers: [['accept', 'application/json']], target: 't1' };

function exchange(): Promise<void> {
  return new Promise((resolve, reject) => {
    const st = p.cloud.openStream(head);
    st.end();
    st.once('response', () => {
      st.on('data', () => undefined);
      st.once('end', resolve);
    });
    st.once('error', reject);
  });
}

async function worker(until: number): Promise<number> {
  let n = 0;
  while (performance.now() < until) {
    await exchange();
    n++;
  }
  return n;
}

async function run(ms: number): Promise<{ exchanges: number; cpuUs: number }> {
  const c0 = process.cpuUsage();
  const until = performance.now() + ms;
  const counts = await Promise.all(Array.from({ length: CONCURRENCY }, () => worker(until)));
  const c = process.cpuUsage(c0);
  return { exchanges: counts.reduce((a, b) => a + b, 0), cpuUs: c.user + c.system };
}

await run(500); // warm-up: JIT and the young generation's size
console.log(`protocol layer, both sessions, ${CONCURRENCY} exchanges in flight, ${SECONDS} s per run`);
for (let i = 0; i < RUNS; i++) {
  const r = await run(SECONDS * 1000);
  console.log(`  run ${i + 1}: ${(r.cpuUs / r.exchanges).toFixed(2)} µs CPU per exchange, ${Math.round(r.exchanges / SECONDS)} exchanges/s`);
}
process.exit(0);
