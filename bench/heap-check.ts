/**
 * `node --expose-gc dist/bench/heap-check.js [rounds] [requests per round]`: is there a leak behind
 * an RSS slope? The cloud and the connector run in this process (the backend in its own), 200
 * relayed requests in flight (10 % POSTs); after each round a forced full GC prints the live heap.
 * A live heap that stays flat while RSS wanders means allocator and GC timing, not retained objects.
 */
import { startInprocCloud, startInprocConnector } from '../test/helpers/inproc.js';
import { ADMIN_TOKEN } from '../test/helpers/procs.js';
import { startBackend } from './lib.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}
const ROUNDS = Number(process.argv[2] ?? 12);
const PER = Number(process.argv[3] ?? 10_000);
const CONCURRENCY = 200;

const backend = await startBackend();
const cloud = await startInprocCloud({ relayTimeoutMs: 30_000 });
const { daemon } = await startInprocConnector(cloud, { targets: [{ id: 'b', baseUrl: backend.baseUrl, auth: { type: 'none' }, tls: { ca: backend.caPem }, maxConcurrent: 256 }] });
const base = `${cloud.config.publicUrl}/api/v1/relay/acme/b`;

async function round(): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < PER) {
      const post = next++ % 10 === 0;
      const r = await fetch(post ? `${base}/upload` : `${base}/small`, { method: post ? 'POST' : 'GET', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, ...(post ? { body: 'x'.repeat(1024) } : {}) });
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`relay answered ${r.status}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

const mib = (n: number): string => (n / 1048576).toFixed(1);
for (let k = 1; k <= ROUNDS; k++) {
  const t = Date.now();
  await round();
  await new Promise((r) => setTimeout(r, 200));
  gc();
  gc();
  const m = process.memoryUsage();
  process.stdout.write(`round ${k}: ${PER} requests in ${Date.now() - t} ms; live heap ${mib(m.heapUsed)} MiB, external ${mib(m.external)} MiB, RSS ${mib(m.rss)} MiB\n`);
}
await daemon.shutdown();
await cloud.shutdown();
await backend.stop();
process.exit(0);
