/**
 * The dial deadline through a proxy that accepts the connection and then says nothing: the socket
 * to the proxy must be closed when the dial is given up, for http:// and https:// proxies alike.
 * (A socket left open is one file descriptor and one proxy connection more per dial, every ~30 s
 * for as long as the proxy hangs.) tls.connect takes the same abort signal as net.connect.
 */
import { expect } from 'chai';
import { createServer, type Server, type Socket } from 'node:net';
import { proxyAgent } from '../../src/connector/proxy.js';
import { dialWebSocket } from '../../src/transport/ws.js';
import { until } from '../helpers/procs.js';

describe('proxy dial deadline: the socket to a proxy that never answers is closed', function () {
  this.timeout(20_000);
  let silent: Server;
  const open = new Set<Socket>();
  let accepted = 0;

  before(async () => {
    silent = createServer((s) => {
      accepted++;
      open.add(s);
      s.resume(); // reads what it is sent (the CONNECT, a ClientHello), so that it sees the close
      s.on('error', () => {});
      s.on('close', () => open.delete(s));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    for (const s of open) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  for (const scheme of ['http', 'https'] as const) {
    it(`${scheme}:// proxy (${scheme === 'https' ? 'its TLS handshake' : 'its answer to CONNECT'} never comes): the dial fails at the deadline and the proxy sees its connection closed`, async () => {
      const proxy = `${scheme}://127.0.0.1:${(silent.address() as { port: number }).port}`;
      const before = accepted;
      const err = await dialWebSocket('wss://cloud.invalid/tunnel', { agent: proxyAgent(proxy), proxy, handshakeTimeoutMs: 500, maxPayload: 1 << 20 }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err, 'the dial fails').to.be.instanceOf(Error);
      expect(String(err?.message)).to.match(/proxy/);
      expect(accepted, 'the dial reached the proxy').to.equal(before + 1);
      await until(() => open.size === 0, 5000, 'the proxy to see its connection closed');
    });
  }
});
