/**
 * Bulk transfer through the relay with memory figures: a download and an upload of --size MiB
 * (default 1024) from an HTTPS backend through cloud -> tunnel -> connector, while sampling the RSS
 * of the cloud and connector processes. Prints a table; the target is RSS growth < 64 MiB each.
 *
 *   npm run bench:transfer [-- --size 1024]
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeConnector, startCloud, tempDir, until, type Cloud } from '../test/helpers/procs.js';
import { startUpstream } from '../test/helpers/upstream.js';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[process.argv.indexOf('--size') + 1] || 1024) || 1024;

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

class RssSampler {
  peak = 0;
  readonly base: number;
  private t: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.base = rssMiB(pid);
    this.peak = this.base;
    this.t = setInterval(() => (this.peak = Math.max(this.peak, rssMiB(pid))), 50);
  }
  stop(): { base: number; peak: number; growth: number } {
    clearInterval(this.t);
    this.peak = Math.max(this.peak, rssMiB(this.pid));
    return { base: this.base, peak: this.peak, growth: this.peak - this.base };
  }
}

async function main(): Promise<void> {
  const total = sizeMiB * MiB;
  const chunk = Buffer.alloc(MiB, 0x5a);
  const up = await startUpstream({
    handler: async (req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-length': String(total), 'content-type': 'application/octet-stream' });
        for (let sent = 0; sent < total; sent += MiB) {
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        }
        res.end();
        return;
      }
      let n = 0;
      for await (const c of req) n += (c as Buffer).length;
      res.end(JSON.stringify({ received: n }));
    },
  });
  const cloud: Cloud = await startCloud({ extra: { logLevel: 'warn', relay: { timeoutSeconds: 120, maxRequestBytes: 4 * 1024 * MiB } } });
  const dir = tempDir('uemlink-bench-');
  writeFileSync(join(dir, 'ca.pem'), up.caPem);
  const conn = await makeConnector({ dir, config: { logLevel: 'warn', targets: [{ id: 'bulk', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { caFile: 'ca.pem' }, timeoutMs: 120_000 }] } });
  const token = (await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'bench' })).body.token as string;
  const paired = await conn.pair(token);
  if (paired.code !== 0) throw new Error(paired.stderr);
  await conn.start();
  await until(async () => (await cloud.api('GET', '/api/v1/connectors')).body.connectors.some((c: { connected: boolean }) => c.connected), 15_000, 'connector');
  const url = `${cloud.url}/api/v1/relay/bench/bulk/blob`;
  const auth = { authorization: `Bearer ${(await import('../test/helpers/procs.js')).ADMIN_TOKEN}` };
  // Warm up (TLS session, pools) so the baseline is a steady state.
  await (await fetch(url, { method: 'POST', headers: auth, body: 'warm' })).text();
  await new Promise((r) => setTimeout(r, 500));

  const rows: string[] = [];
  for (const dir_ of ['download', 'upload'] as const) {
    const cs = new RssSampler(cloud.proc.pid);
    const ks = new RssSampler(conn.proc.pid);
    const t0 = process.hrtime.bigint();
    let bytes = 0;
    if (dir_ === 'download') {
      const res = await fetch(url, { headers: auth });
      const h = createHash('md5');
      for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
        bytes += c.length;
        h.update(c);
      }
    } else {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(ctl) {
          if (sent >= total) return ctl.close();
          sent += MiB;
          ctl.enqueue(chunk);
        },
      });
      const res = await fetch(url, { method: 'POST', headers: { ...auth, 'content-length': String(total) }, body, duplex: 'half' } as RequestInit);
      bytes = ((await res.json()) as { received: number }).received;
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = cs.stop();
    const k = ks.stop();
    if (bytes !== total) throw new Error(`${dir_}: moved ${bytes} of ${total} bytes`);
    rows.push(
      `${dir_.padEnd(9)} ${String(sizeMiB).padStart(6)} MiB ${secs.toFixed(2).padStart(7)} s ${(sizeMiB / secs).toFixed(1).padStart(8)} MiB/s` +
        `   cloud RSS ${c.base.toFixed(0)}→${c.peak.toFixed(0)} MiB (+${c.growth.toFixed(1)})` +
        `   connector RSS ${k.base.toFixed(0)}→${k.peak.toFixed(0)} MiB (+${k.growth.toFixed(1)})`,
    );
  }
  process.stdout.write(`\nrelay bulk transfer (HTTPS backend in the bench process; cloud and connector are separate processes on loopback)\n`);
  for (const r of rows) process.stdout.write(`${r}\n`);
  process.stdout.write('target: RSS growth < 64 MiB per process\n');
  await conn.proc.stop();
  await cloud.proc.stop();
  await up.close();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
    process.exit(1);
  },
);
