/**
 * Adverse-network review: the connector dials a cloud address that accepts TCP and then says
 * nothing (a firewall or load balancer that accepts and drops, a cloud whose process is frozen).
 *
 * protocol.md §4.3 and config.md: the WebSocket upgrade gets `tunnel.handshakeTimeoutSeconds`, then
 * the tunnel handshake the same again. Over ws:// the upgrade is given up after 1×; over wss:// after
 * 2×: ws's handshakeTimeout is Node's socket idle timeout, and on a TLS socket whose ClientHello is
 * still unacknowledged Node's _onTimeout sees a pending write and re-arms the timer once (net.js
 * kLastWriteQueueSize). With the default 10 s, a TLS black hole costs 20 s per dial instead of 10 s.
 */
import { expect } from 'chai';
import { createServer, type Server, type Socket } from 'node:net';
import { makeConnector, startCloud, tempDir, until, type Cloud, type Connector } from '../helpers/procs.js';
import { patchConfig } from '../helpers/network-faults.js';

const HANDSHAKE_S = 2;

describe('network faults (found in review): dialling a cloud address that accepts TCP and never answers', function () {
  this.timeout(60_000);
  let cloud: Cloud;
  let silent: Server;
  const sockets = new Set<Socket>();
  let conn: Connector | undefined;

  before(async () => {
    cloud = await startCloud({ extra: { logLevel: 'info' } });
    silent = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await conn?.proc?.stop();
    await cloud?.proc.stop();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  for (const scheme of ['http', 'https'] as const) {
    it(`${scheme === 'http' ? 'ws' : 'wss'}://: the dial is given up after tunnel.handshakeTimeoutSeconds (${HANDSHAKE_S} s), as documented`, async () => {
      await conn?.proc?.stop();
      const c = await makeConnector({ dir: tempDir('uemlink-review-dial-'), config: { logLevel: 'info', cloudUrl: cloud.url, targets: [] } });
      conn = c;
      const t = await cloud.api('POST', '/api/v1/pairing-tokens', { tenant: 'acme' });
      const r = await c.pair(t.body.token as string);
      expect(r.code, r.stderr).to.equal(0);
      patchConfig(c, { cloudUrl: `${scheme}://127.0.0.1:${(silent.address() as { port: number }).port}`, tunnel: { handshakeTimeoutSeconds: HANDSHAKE_S } });
      await c.start();
      const start = await c.proc.waitLog((l) => l.message === 'starting tunnel', 15_000, 'the tunnel to start');
      const failed = await until(() => c.proc.logs.find((l) => l.message === 'tunnel connection failed'), 20_000, 'a failed dial');
      const took = Date.parse(String(failed.timestamp)) - Date.parse(String(start.timestamp));
      process.stdout.write(`      ${scheme === 'http' ? 'ws' : 'wss'}: first dial given up after ${took} ms (${String(failed.reason)})\n`);
      expect(took, 'ms from start to the failed dial').to.be.below(HANDSHAKE_S * 1000 + 1500);
    });
  }
});
