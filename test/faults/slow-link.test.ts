/**
 * Adverse-network review: a slow but live link between connector and cloud (real processes, the
 * fault lab's TCP proxy trickling bytes at a steady rate, heartbeat 1 s on both sides).
 *
 * The heartbeat declares the peer dead when a PING is unanswered and no *complete WebSocket
 * message* arrived during one interval (before the fix; heartbeat.ts now: nothing at all heard for two whole intervals).
 * While a bulk transfer crosses a slow link:
 * - the receiving side hears only complete messages, and a bulk transfer travels in messages of up
 *   to BATCH_BYTES = 256 KiB;
 * - the sending side hears only what the receiver sends back: its PONGs and PINGs queue behind the
 *   bulk data (so they are late), a side sends no new PING while one is outstanding, and WINDOW
 *   credit comes once per half window (1 MiB window, grown by auto-tuning, whose RTT is the inflated
 *   PONG delay).
 * So when 256 KiB (or half a window) take longer than an interval to cross, a side hears nothing
 * for an interval while bytes flow steadily: the whole tunnel (every request on it) is dropped,
 * and the transfer never completes however often it is retried.
 *
 * Scaled here: 1 s heartbeat and 80 KiB/s (a 256 KiB message takes 3.2 s). With the defaults
 * (heartbeatSeconds 15), measured with this lab: a 2 MiB download over 32 KiB/s (256 kbit/s) died
 * after 60.8 s and 1 MiB over 16 KiB/s after 30.5 s; a 1 MiB upload over 16 KiB/s died after 60 s
 * (TUNNEL_HEARTBEAT_TIMEOUT; each needed 64 s); 4 MiB down at 64 KiB/s and 1 MiB up at 32 KiB/s
 * completed.
 */
import { expect } from 'chai';
import { request } from 'node:http';
import { ADMIN_TOKEN, sleep } from '../helpers/procs.js';
import { answerWithDigest, startUpstream, type Upstream } from '../helpers/upstream.js';
import { startLab, type Lab } from './lab.js';

const LINK = { bytes: 8 * 1024, everyMs: 100 }; // 80 KiB/s
const SIZE = 1024 * 1024; // 12.8 s at that rate

interface Result {
  status?: number;
  code?: string;
  got: number;
  err?: string;
  ms: number;
}

describe('network faults (found in review): a slow, live link does not kill the tunnel', function () {
  this.timeout(120_000);
  let lab: Lab;
  let up: Upstream;

  before(async function () {
    this.timeout(60_000);
    up = await startUpstream({
      handler: async (req, res) => {
        if (req.method === 'GET') {
          const n = Number(new URL(req.url ?? '/', 'https://x').searchParams.get('n') ?? 0);
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
          res.end(Buffer.alloc(n, 0x61));
          return;
        }
        await answerWithDigest(req, res);
      },
    });
    lab = await startLab({
      targets: () => [{ id: 'bulk', baseUrl: up.baseUrl, auth: { type: 'none' }, tls: { ca: up.caPem }, timeoutMs: 60_000 }],
      cloud: { relay: { timeoutSeconds: 60 } },
    });
  });
  after(async () => {
    lab?.tunnel.set({ kind: 'pass' });
    await lab?.stop();
    await up?.close();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && lab) process.stderr.write(lab.logs());
    lab.tunnel.set({ kind: 'pass' });
    await lab.waitConnected(30_000);
  });

  function relay(method: 'GET' | 'POST', path: string, body?: Buffer): Promise<Result> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      const req = request(
        `${lab.cloud.url}/api/v1/relay/acme/bulk/${path}`,
        { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-length': String(body.length) } : {}) } },
        (res) => {
          let got = 0;
          res.on('data', (c: Buffer) => (got += c.length));
          res.on('end', () => resolve({ status: res.statusCode!, code: String(res.headers['x-uemlink-error'] ?? 'ok'), got, ms: Date.now() - t0 }));
          res.on('error', () => resolve({ status: res.statusCode!, err: 'aborted', got, ms: Date.now() - t0 }));
        },
      );
      req.setTimeout(90_000, () => req.destroy(new Error('client timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ err: e.code ?? e.message, got: 0, ms: Date.now() - t0 }));
      req.end(body);
    });
  }

  /** Tunnel losses seen by either side since the given log positions. */
  const lost = (from: { conn: number; cloud: number }): string[] => [
    ...lab.conn.proc.logs
      .slice(from.conn)
      .filter((l) => l.message === 'tunnel lost')
      .map((l) => `connector: ${String(l.code)}: ${String(l.reason)}`),
    ...lab.cloud.proc.logs
      .slice(from.cloud)
      .filter((l) => l.message === 'connector disconnected')
      .map((l) => `cloud: ${String(l.code)} ${String(l.reason)}`),
  ];
  const mark = (): { conn: number; cloud: number } => ({ conn: lab.conn.proc.logs.length, cloud: lab.cloud.proc.logs.length });

  it('control: the idle tunnel and small calls live through the same link for 6 s', async () => {
    const c0 = mark();
    lab.tunnel.set({ kind: 'trickle', ...LINK });
    await sleep(3000);
    const r = await relay('GET', 'x?n=20000');
    await sleep(3000);
    expect(r.status, JSON.stringify(r)).to.equal(200);
    expect(lost(c0), 'tunnel losses').to.deep.equal([]);
  });

  for (const dir of ['download', 'upload'] as const) {
    it(`a 1 MiB ${dir} over a steady 80 KiB/s link (12.8 s of transfer) completes; the tunnel is not declared dead while bytes flow`, async () => {
      const c0 = mark();
      // Download: the connector's messages to the cloud are slow ('up'); upload: the cloud's ('down').
      lab.tunnel.set({ kind: 'trickle', ...LINK, direction: dir === 'download' ? 'up' : 'down' });
      const r = dir === 'download' ? await relay('GET', `x?n=${SIZE}`) : await relay('POST', 'x', Buffer.alloc(SIZE, 0x62));
      await sleep(500); // both sides have logged the loss by now
      const losses = lost(c0);
      process.stdout.write(`      ${dir}: ${JSON.stringify(r)}; tunnel lost ${losses.length}× (${losses[0] ?? '-'})\n`);
      expect(losses, 'tunnel declared dead while the transfer was flowing').to.deep.equal([]);
      expect(r.status, JSON.stringify(r)).to.equal(200);
      if (dir === 'download') expect(r.got).to.equal(SIZE);
    });
  }
});
