/**
 * Bulk transfer through the relay with memory figures: a download and an upload of --size MiB
 * (default 1024) from the benchmark's HTTPS backend through cloud -> tunnel -> connector, while
 * sampling the RSS of the cloud and connector processes. Prints a table; the target is RSS growth
 * < 64 MiB each.
 *
 * The cloud serves HTTPS and the tunnel is wss://, as deployed (and as `npm run bench` measures);
 * `--plain` runs the cloud without TLS, as behind a TLS-terminating balancer.
 *
 *   npm run bench:transfer [-- --size 1024] [--plain]
 */
import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import { ProcSampler, startBackend, startUemlink } from './lib.js';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[process.argv.indexOf('--size') + 1] || 1024) || 1024;
const PLAIN = process.argv.includes('--plain');

async function main(): Promise<void> {
  const total = sizeMiB * MiB;
  const chunk = Buffer.alloc(MiB, 0x5a);
  const backend = await startBackend();
  const u = await startUemlink(backend, { tls: !PLAIN });
  // The client trusts the cloud's generated CA (fetch's own dispatcher would not).
  const dispatcher = new Agent(u.cloudCaFile ? { connect: { ca: readFileSync(u.cloudCaFile, 'utf8') } } : {});
  const auth = { authorization: u.authHeader };
  // Warm up (TLS sessions, pools, the JIT) so the baseline is a steady state.
  for (const p of ['/download?mib=64', '/upload']) {
    const r = await undiciFetch(`${u.relayBase}${p}`, { dispatcher, headers: auth, ...(p === '/upload' ? { method: 'POST', body: Buffer.alloc(64 * MiB) } : {}) });
    await r.arrayBuffer();
  }
  await new Promise((r) => setTimeout(r, 500));

  const rows: string[] = [];
  for (const dir_ of ['download', 'upload'] as const) {
    const sampler = new ProcSampler(
      [
        { name: 'cloud', pids: () => [u.cloud.proc.pid] },
        { name: 'connector', pids: () => [u.conn.proc.pid] },
      ],
      50,
    );
    const t0 = process.hrtime.bigint();
    let bytes = 0;
    if (dir_ === 'download') {
      const res = await undiciFetch(`${u.relayBase}/download?mib=${sizeMiB}`, { dispatcher, headers: auth });
      for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) bytes += c.length;
    } else {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(ctl) {
          if (sent >= total) return ctl.close();
          sent += MiB;
          ctl.enqueue(chunk);
        },
      });
      const res = await undiciFetch(`${u.relayBase}/upload`, { dispatcher, method: 'POST', headers: { ...auth, 'content-length': String(total) }, body, duplex: 'half' });
      bytes = ((await res.json()) as { received: number }).received;
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const f = sampler.stop();
    const c = f.cloud!;
    const k = f.connector!;
    if (bytes !== total) throw new Error(`${dir_}: moved ${bytes} of ${total} bytes`);
    rows.push(
      `${dir_.padEnd(9)} ${String(sizeMiB).padStart(6)} MiB ${secs.toFixed(2).padStart(7)} s ${(sizeMiB / secs).toFixed(1).padStart(8)} MiB/s` +
        `   cloud RSS ${c.rssBaseMiB.toFixed(0)}→${c.rssPeakMiB.toFixed(0)} MiB (+${c.rssGrowthMiB.toFixed(1)}), ${c.cpuS} CPU s` +
        `   connector RSS ${k.rssBaseMiB.toFixed(0)}→${k.rssPeakMiB.toFixed(0)} MiB (+${k.rssGrowthMiB.toFixed(1)}), ${k.cpuS} CPU s`,
    );
  }
  process.stdout.write(
    `\nrelay bulk transfer (bench/backend.ts over HTTPS; cloud and connector are separate processes on loopback; ${PLAIN ? 'the cloud WITHOUT TLS (--plain)' : 'relay API https://, tunnel wss://'})\n`,
  );
  for (const r of rows) process.stdout.write(`${r}\n`);
  process.stdout.write('target: RSS growth < 64 MiB per process\n');
  await dispatcher.close();
  await u.stop();
  await backend.stop();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
    process.exit(1);
  },
);
