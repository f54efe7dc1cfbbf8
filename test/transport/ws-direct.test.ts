/**
 * Messages the tunnel frames itself (WsTransport.send with headroom): the header written in front of
 * the message is the one ws would write, header and message leave as one buffer, and order, bytes
 * and the `sent` callbacks are as with ws.send, over real TLS sockets.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import WebSocket, * as wsModule from 'ws';
import { createTestPki } from '../../src/common/pki.js';
import { TRANSPORT_HEADROOM } from '../../src/protocol/writer.js';
import { createTunnelServer, dialWebSocket, WsTransport } from '../../src/transport/ws.js';
import { wsHeaderLength, writeWsHeader } from '../../src/transport/ws-frame.js';
import { until } from '../helpers/procs.js';

// ws's own framing, the reference (exported by ws, not in its typings).
const Sender = (wsModule as unknown as { Sender: unknown }).Sender as {
  frame(data: { length: number }, o: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; generateMask?: (m: Buffer) => void }): Buffer[];
};

/** A message of `n` bytes (a counter pattern, so reordering or a shifted byte shows) with headroom. */
function message(n: number, seed: number, headroom = TRANSPORT_HEADROOM): Buffer {
  const b = Buffer.allocUnsafe(headroom + n);
  b.fill(0xee, 0, headroom); // what the transport must overwrite, never send as is
  for (let i = 0; i < n; i++) b[headroom + i] = (seed + i * 7) & 0xff;
  return b.subarray(headroom);
}

describe('tunnel messages framed in their headroom (WsTransport)', function () {
  this.timeout(30_000);

  it('writes the header ws writes, for any length, masked (all-zero key) or not', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max: 2 ** 40 })), fc.boolean(), (length, masked) => {
        const [ref] = Sender.frame({ length }, { fin: true, opcode: 2, mask: masked, readOnly: false, ...(masked ? { generateMask: (m: Buffer) => m.fill(0) } : {}) });
        const ours = Buffer.alloc(wsHeaderLength(length, masked));
        expect(writeWsHeader(ours, 0, length, masked)).to.equal(ours.length);
        expect(ours.toString('hex')).to.equal(ref!.toString('hex'));
        expect(ours.length).to.be.at.most(TRANSPORT_HEADROOM);
      }),
    );
  });

  const pki = createTestPki(['127.0.0.1']);
  let server: Server;
  let port = 0;
  let accepted: Promise<WsTransport>;
  beforeEach(async () => {
    const wss = createTunnelServer(1 << 20);
    server = createServer({ key: pki.keyPem, cert: pki.certPem });
    accepted = new Promise((resolve) => server.once('upgrade', (req, socket, head) => void wss.accept(req, socket, head).then(resolve)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterEach(() => {
    server.closeAllConnections();
    server.close();
  });

  /** Collects what `to` receives until it has `n` messages. */
  function receive(to: WsTransport, n: number): Promise<Buffer[]> {
    return new Promise((resolve, reject) => {
      const got: Buffer[] = [];
      to.setHandlers({
        message: (m) => {
          got.push(Buffer.from(m));
          if (got.length === n) resolve(got);
        },
        drain() {},
        close: (code) => reject(new Error(`closed (${code}) after ${got.length} of ${n} messages`)),
      });
    });
  }

  /** Sends a burst (some with headroom, some without), so that most wait behind a write in flight. */
  async function burst(from: WsTransport, to: WsTransport): Promise<{ sentCalls: number[]; writevCalls: number }> {
    const sizes = [300, 5, 200 * 1024, 70_000, 125, 126, 65_535, 65_536, 256 * 1024, 9, 100_000, 1];
    const msgs = sizes.map((n, k) => message(n, k));
    const sentCalls = msgs.map(() => 0);
    const socket = (from as unknown as { ws: { _socket: { _writev: (...a: unknown[]) => unknown } } }).ws._socket;
    let writevCalls = 0;
    const writev = socket._writev.bind(socket);
    socket._writev = (...a: unknown[]) => (writevCalls++, writev(...a));
    const got = receive(to, msgs.length);
    msgs.forEach((m, k) => from.send(m, () => sentCalls[k]!++, k % 3 === 2 ? 0 : TRANSPORT_HEADROOM));
    const received = await got;
    expect(received.map((m) => m.length)).to.deep.equal(sizes);
    received.forEach((m, k) => expect(m.equals(msgs[k]!), `message ${k}`).to.equal(true));
    await until(() => sentCalls.every((c) => c > 0), 5000, 'every sent callback');
    expect(from.bufferedAmount).to.equal(0);
    return { sentCalls, writevCalls };
  }

  it('client (all-zero masks) to cloud and back over TLS: one buffer per write, order and bytes kept', async () => {
    const client = await dialWebSocket(`wss://127.0.0.1:${port}/t`, { ca: [pki.caCertPem], handshakeTimeoutMs: 5000, maxPayload: 1 << 20 });
    const cloud = await accepted;
    for (const [from, to] of [
      [client, cloud],
      [cloud, client],
    ] as const) {
      const { sentCalls, writevCalls } = await burst(from, to);
      expect(sentCalls).to.deep.equal(sentCalls.map(() => 1));
      expect(from.directWrites).to.equal(8); // the 8 of 12 sent with headroom
      // ws alone writes header and message together (cork, writev); messages written while the
      // socket is busy leave joined too. Neither happens with headroom: what remains are the four
      // messages sent without it, one writev each.
      expect(writevCalls).to.equal(4);
    }
    client.terminate();
  });

  it('leaves framing to ws where masks are random (a plain ws:// tunnel across a network)', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/t`, { ca: pki.caCertPem, perMessageDeflate: false });
    await once(ws, 'open');
    const client = new WsTransport(ws, '', 'ws');
    const cloud = await accepted;
    const { sentCalls } = await burst(client, cloud);
    expect(sentCalls).to.deep.equal(sentCalls.map(() => 1));
    expect(client.directWrites).to.equal(0);
    ws.terminate();
  });

  it('sends what waits behind the write in flight before the Close frame when this side closes', async () => {
    const client = await dialWebSocket(`wss://127.0.0.1:${port}/t`, { ca: [pki.caCertPem], handshakeTimeoutMs: 5000, maxPayload: 1 << 20 });
    const cloud = await accepted;
    const msgs = [...Array.from({ length: 10 }, (_, k) => message(200 * 1024, k)), message(40, 99)];
    const got = receive(cloud, msgs.length);
    const closed = new Promise<number>((resolve) => client.setHandlers({ message() {}, drain() {}, close: (code) => resolve(code) }));
    const sent = msgs.map(() => 0);
    msgs.forEach((m, k) => client.send(m, () => sent[k]!++, TRANSPORT_HEADROOM));
    expect(client.bufferedAmount).to.be.greaterThan(9 * 200 * 1024); // most of it waiting in the transport
    client.close(1000, 'bye'); // as the session does after its last flush (a GOAWAY saying why)
    const received = await got;
    received.forEach((m, k) => expect(m.equals(msgs[k]!), `message ${k}`).to.equal(true));
    expect(await closed).to.equal(1000);
    expect(sent).to.deep.equal(sent.map(() => 1));
  });

  it('gives back every waiting message once when the connection drops', async () => {
    const client = await dialWebSocket(`wss://127.0.0.1:${port}/t`, { ca: [pki.caCertPem], handshakeTimeoutMs: 5000, maxPayload: 1 << 20 });
    await accepted;
    const sent = new Array<number>(40).fill(0);
    for (let k = 0; k < sent.length; k++) client.send(message(200 * 1024, k), () => sent[k]!++, TRANSPORT_HEADROOM);
    expect(client.bufferedAmount).to.be.greaterThan(39 * 200 * 1024); // one in flight, the rest waiting
    client.terminate();
    await until(() => sent.every((c) => c > 0), 5000, 'every sent callback');
    expect(sent).to.deep.equal(sent.map(() => 1));
    expect(client.bufferedAmount).to.equal(0);
    client.send(message(10, 1), () => sent[0]!++, TRANSPORT_HEADROOM); // after close: dropped at once
    expect(sent[0]).to.equal(2);
  });
});
