/**
 * TLS session resumption on tunnel redials (TlsSessionCache): the session outlives refused dials
 * (a cloud restarting), is forgotten when a TLS handshake fails, and is offered only to the
 * endpoint that issued it.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { createTestPki } from '../../src/common/pki.js';
import { createTunnelServer, dialWebSocket, TlsSessionCache, type TlsInfo } from '../../src/transport/ws.js';

describe('tunnel TLS session resumption (TlsSessionCache)', function () {
  this.timeout(30_000);
  const pki = createTestPki(['127.0.0.1']);
  const stranger = createTestPki(['127.0.0.1']);
  const ticketKeys = randomBytes(48);
  const servers: Server[] = [];

  /** A tunnel endpoint that accepts and closes; `cert` from `p`, tickets sealed with ticketKeys. */
  async function endpoint(p = pki, port = 0, keys = ticketKeys): Promise<{ port: number; server: Server; sawResumed: boolean[] }> {
    const wss = createTunnelServer(1 << 20);
    const sawResumed: boolean[] = [];
    const server = createServer({ key: p.keyPem, cert: p.certPem, ticketKeys: keys, sessionTimeout: 3600 });
    server.on('upgrade', (req, socket, head) =>
      void wss.accept(req, socket, head).then((t) => {
        sawResumed.push(t.tls?.resumed ?? false);
        t.close(1000, 'bye');
      }),
    );
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    return { port: (server.address() as AddressInfo).port, server, sawResumed };
  }
  const close = async (s: Server): Promise<void> => {
    s.closeAllConnections();
    s.close();
    await once(s, 'close');
  };
  after(() => servers.forEach((s) => s.listening && s.close()));

  async function dial(port: number, cache: TlsSessionCache, ca = [pki.caCertPem]): Promise<TlsInfo | string> {
    try {
      const t = await dialWebSocket(`wss://127.0.0.1:${port}/t`, { ca, tlsSessions: cache, handshakeTimeoutMs: 5000, maxPayload: 1 << 20 });
      await new Promise<void>((r) => t.setHandlers({ message() {}, drain() {}, close: () => r() }));
      return t.tls!;
    } catch (e) {
      return (e as Error).message;
    }
  }

  it('resumes on redial, also after refused dials while the server was away', async () => {
    const cache = new TlsSessionCache();
    const a = await endpoint();
    expect(await dial(a.port, cache)).to.deep.equal({ protocol: 'TLSv1.3', resumed: false });
    expect(await dial(a.port, cache)).to.deep.equal({ protocol: 'TLSv1.3', resumed: true });
    await close(a.server);
    for (let i = 0; i < 3; i++) expect(await dial(a.port, cache)).to.contain('ECONNREFUSED');
    const again = await endpoint(pki, a.port);
    expect(await dial(again.port, cache)).to.deep.equal({ protocol: 'TLSv1.3', resumed: true });
    expect(again.sawResumed).to.deep.equal([true]);
  });

  it('keeps the session through connections reset before the TLS handshake (a restarting cloud, a balancer without backends)', async () => {
    const cache = new TlsSessionCache();
    const a = await endpoint();
    expect(await dial(a.port, cache)).to.include({ resumed: false });
    await close(a.server);
    const resetter = createNetServer((sock) => sock.resetAndDestroy());
    resetter.listen(a.port, '127.0.0.1');
    await once(resetter, 'listening');
    for (let i = 0; i < 2; i++) expect(await dial(a.port, cache)).to.match(/ECONNRESET|reset|closed/i);
    resetter.close();
    await once(resetter, 'close');
    const back = await endpoint(pki, a.port);
    expect(await dial(back.port, cache)).to.include({ resumed: true });
  });

  it('offers the session only under the same trust: other extra CAs mean a full handshake', async () => {
    const cache = new TlsSessionCache();
    const a = await endpoint();
    expect(await dial(a.port, cache)).to.include({ resumed: false });
    expect(await dial(a.port, cache)).to.include({ resumed: true });
    // cloud.caFile now also names another CA: the certificate is checked again.
    expect(await dial(a.port, cache, [pki.caCertPem, stranger.caCertPem])).to.include({ resumed: false });
  });

  it('forgets the session when a TLS handshake fails, and offers it to no other endpoint', async () => {
    const cache = new TlsSessionCache();
    const a = await endpoint();
    expect(await dial(a.port, cache)).to.include({ resumed: false });
    // Another endpoint (same ticket key, so it could resume): the session is not offered there.
    const b = await endpoint();
    expect(await dial(b.port, cache)).to.include({ resumed: false });
    expect(await dial(b.port, cache)).to.include({ resumed: true });
    // b's port now serves a certificate we do not trust (and cannot open our tickets, which would
    // take the ticket key): the full handshake fails...
    await close(b.server);
    const impostor = await endpoint(stranger, b.port, randomBytes(48));
    expect(await dial(impostor.port, cache)).to.match(/certificate|self.signed|unable to verify/i);
    await close(impostor.server);
    // ...and the session is forgotten: the trusted server back on that port gets a full handshake.
    const back = await endpoint(pki, b.port);
    expect(await dial(back.port, cache)).to.include({ resumed: false });
  });
});
