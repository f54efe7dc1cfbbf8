/**
 * The TLS handshake gate: at most N handshakes in progress, the rest wait unread in arrival order,
 * a connection that waited too long is closed, and a slot is freed by a secure handshake, a closed
 * socket or its time limit. Unit tests drive the accounting with a fake clock; the rest use a real
 * HTTPS server, real TLS clients and raw TCP sockets on loopback.
 */
import { expect } from 'chai';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:https';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { Agent as HttpsAgent, request } from 'node:https';
import sinon from 'sinon';
import { systemClock, type Clock } from '../../src/common/clock.js';
import { createTestPki } from '../../src/common/pki.js';
import { gateTlsHandshakes, HandshakeGate, type GatedConnection } from '../../src/cloud/handshake-gate.js';
import { sourceOf } from '../../src/cloud/fair-queue.js';
import { startInprocCloud } from '../helpers/inproc.js';

class FakeConn extends EventEmitter implements GatedConnection {
  destroyed = false;
  constructor(
    readonly name: string,
    readonly remoteAddress?: string,
  ) {
    super();
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

describe('TLS handshake gate (accounting)', () => {
  let clock: sinon.SinonFakeTimers;
  let c: Clock;
  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: Date.parse('2026-11-24T00:00:00Z') });
    c = systemClock;
  });
  afterEach(() => clock.restore());

  function gate(max = 2, extra: Partial<ConstructorParameters<typeof HandshakeGate>[0]> = {}) {
    const started: string[] = [];
    const g = new HandshakeGate<FakeConn>({ maxInProgress: max, maxWaitMs: 5000, slotMs: 2000, maxQueued: 3, clock: c, ...extra }, (x) => started.push(x.name));
    return { g, started };
  }

  it('starts up to maxInProgress at once and the rest in arrival order as slots free up', () => {
    const { g, started } = gate(2);
    const cs = ['a', 'b', 'c', 'd'].map((n) => new FakeConn(n));
    cs.forEach((x) => g.arrived(x));
    expect(started).to.deep.equal(['a', 'b']);
    expect(g.stats).to.include({ inProgress: 2, queued: 2 });
    g.done(cs[1]!); // b secure
    expect(started).to.deep.equal(['a', 'b', 'c']);
    g.done(cs[1]!); // twice: no second slot freed
    expect(started).to.deep.equal(['a', 'b', 'c']);
    cs[0]!.emit('close'); // a failed
    expect(started).to.deep.equal(['a', 'b', 'c', 'd']);
    expect(g.stats).to.deep.equal({ inProgress: 2, queued: 0, sources: 0, dropped: 0, expired: 0 });
  });

  it('a newcomer does not overtake connections already waiting', () => {
    const { g, started } = gate(1);
    const [a, b, x] = ['a', 'b', 'x'].map((n) => new FakeConn(n));
    g.arrived(a!);
    g.arrived(b!);
    g.done(a!);
    g.arrived(x!);
    expect(started).to.deep.equal(['a', 'b']);
    expect(g.stats.queued).to.equal(1);
  });

  it('closes a connection that waited longer than maxWaitMs instead of starting it', () => {
    const { g, started } = gate(1, { slotMs: 60_000 });
    const [a, b, d] = ['a', 'b', 'd'].map((n) => new FakeConn(n));
    g.arrived(a!);
    g.arrived(b!);
    clock.tick(4000);
    g.arrived(d!);
    clock.tick(1001); // b has waited 5.001 s, d 1.001 s
    g.done(a!);
    expect(b!.destroyed).to.equal(true);
    expect(d!.destroyed).to.equal(false);
    expect(started).to.deep.equal(['a', 'd']);
    expect(g.stats).to.include({ dropped: 1, inProgress: 1, queued: 0 });
  });

  it('closes arrivals beyond maxQueued at once', () => {
    const { g } = gate(1);
    const cs = ['a', 'b', 'c', 'd', 'e'].map((n) => new FakeConn(n));
    cs.forEach((x) => g.arrived(x));
    expect(cs.map((x) => x.destroyed)).to.deep.equal([false, false, false, false, true]);
    expect(g.stats).to.include({ queued: 3, dropped: 1 });
  });

  it('a slow handshake that holds its slot past slotMs frees it and goes on outside the count', () => {
    const { g, started } = gate(1);
    const [slow, next] = ['slow', 'next'].map((n) => new FakeConn(n));
    g.arrived(slow!);
    g.arrived(next!);
    clock.tick(1999);
    expect(started).to.deep.equal(['slow']);
    clock.tick(1);
    expect(started).to.deep.equal(['slow', 'next']);
    expect(slow!.destroyed).to.equal(false);
    expect(g.stats).to.include({ expired: 1, inProgress: 1 });
    slow!.emit('close'); // its later end does not free a slot it no longer holds
    expect(g.stats.inProgress).to.equal(1);
  });


  it('reports drops at most once per reportMs, with the count since the last report', () => {
    const reports: number[] = [];
    const { g } = gate(1, { maxQueued: 0, slotMs: 1e9, reportMs: 5000, report: (n) => reports.push(n) });
    g.arrived(new FakeConn('a'));
    for (let i = 0; i < 7; i++) g.arrived(new FakeConn(`x${i}`));
    expect(reports).to.deep.equal([]);
    clock.tick(5000);
    expect(reports).to.deep.equal([7]);
    g.arrived(new FakeConn('y'));
    clock.tick(5000);
    expect(reports).to.deep.equal([7, 1]);
    clock.tick(60_000);
    expect(reports).to.deep.equal([7, 1]);
  });

  it('close() closes the waiting connections and every later arrival; the ones in progress go on', () => {
    const { g, started } = gate(1);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n, i) => new FakeConn(n, `192.0.2.${i}`));
    g.arrived(a!);
    g.arrived(b!);
    g.arrived(d!);
    g.close();
    expect(b!.destroyed).to.equal(true);
    expect(d!.destroyed).to.equal(true);
    expect(a!.destroyed).to.equal(false);
    g.arrived(c!);
    expect(c!.destroyed).to.equal(true);
    g.done(a!);
    expect(started).to.deep.equal(['a']);
    expect(g.stats).to.include({ inProgress: 0, queued: 0 });
  });

  it('serves waiting sources in turn: a source with many waiting delays another by one of its own at a time', () => {
    const { g, started } = gate(1, { maxQueued: 100, slotMs: 1e9 });
    const flood = Array.from({ length: 6 }, (_, i) => new FakeConn(`f${i}`, '203.0.113.9'));
    flood.forEach((x) => g.arrived(x)); // f0 starts, f1..f5 wait
    const [l1, l2, m1] = [new FakeConn('l1', '198.51.100.1'), new FakeConn('l2', '198.51.100.1'), new FakeConn('m1', '::ffff:192.0.2.7')];
    g.arrived(l1);
    g.arrived(m1);
    g.arrived(l2);
    expect(g.stats).to.include({ queued: 8, sources: 3 });
    expect(g.stats.busiest).to.deep.equal({ source: '203.0.113.9', queued: 5 });
    const conns = [...flood, l1, l2, m1];
    for (let i = 0; i < 8; i++) g.done(conns.find((x) => x.name === started[started.length - 1])!);
    // In arrival order this would be f1..f5 and only then l1, m1, l2.
    expect(started).to.deep.equal(['f0', 'f1', 'l1', 'm1', 'f2', 'l2', 'f3', 'f4', 'f5']);
    expect(g.stats).to.include({ queued: 0, sources: 0 });
  });

  it('a full queue makes room by closing the busiest source\'s oldest, not the newcomer from a quiet source', () => {
    const { g, started } = gate(1, { maxQueued: 3, slotMs: 1e9 });
    const f = Array.from({ length: 4 }, (_, i) => new FakeConn(`f${i}`, '2001:db8:1:2:aaaa::1'));
    f.forEach((x) => g.arrived(x)); // f0 starts, f1..f3 fill the queue
    const l = new FakeConn('l', '192.0.2.50');
    g.arrived(l);
    expect(f[1]!.destroyed).to.equal(true); // the busiest source's oldest
    expect(l.destroyed).to.equal(false);
    // Another address in the same /64 is the same source; it is the busiest, so the newcomer goes.
    const f4 = new FakeConn('f4', '2001:db8:1:2:bbbb::2');
    g.arrived(f4);
    expect(f4.destroyed).to.equal(true);
    // A second quiet source gets in: the busiest (2 waiting) is still 2 longer than it.
    const m = new FakeConn('m', '192.0.2.51');
    g.arrived(m);
    expect(f[2]!.destroyed).to.equal(true);
    expect(g.stats).to.include({ queued: 3, dropped: 3, sources: 3 });
    // Now the busiest has 1 waiting, as many as a newcomer's source would: the newcomer goes.
    const m2 = new FakeConn('m2', '192.0.2.51');
    g.arrived(m2);
    expect(m2.destroyed).to.equal(true);
    g.done(f[0]!);
    g.done(f[3]!);
    g.done(l);
    expect(started).to.deep.equal(['f0', 'f3', 'l', 'm']);
  });

  it('sheds from whichever source has the most waiting now, also after ties and sheds', () => {
    const { g } = gate(1, { maxQueued: 10, slotMs: 1e9 });
    g.arrived(new FakeConn('x', '192.0.2.99')); // holds the only slot
    const a = Array.from({ length: 5 }, (_, i) => new FakeConn(`a${i}`, '198.51.100.1'));
    const b = Array.from({ length: 5 }, (_, i) => new FakeConn(`b${i}`, '198.51.100.2'));
    [...a, ...b].forEach((c) => g.arrived(c));
    const quiet = Array.from({ length: 9 }, (_, i) => new FakeConn(`q${i}`, `203.0.113.${i + 1}`));
    const gone = (): string[] => [...a, ...b, ...quiet].filter((c) => c.destroyed).map((c) => c.name);
    for (const q of quiet.slice(0, 6)) g.arrived(q);
    // 5 and 5: the first to get there goes first, then whichever is longer, alternately.
    expect(gone()).to.deep.equal(['a0', 'a1', 'a2', 'b0', 'b1', 'b2']);
    expect(g.stats.busiest).to.deep.include({ queued: 2 });
    g.arrived(quiet[6]!);
    g.arrived(quiet[7]!);
    expect(gone()).to.deep.equal(['a0', 'a1', 'a2', 'a3', 'b0', 'b1', 'b2', 'b3']);
    // Every source has 1 now: the newcomer is the one that goes.
    g.arrived(quiet[8]!);
    expect(quiet.map((q) => q.destroyed)).to.deep.equal([false, false, false, false, false, false, false, false, true]);
    expect(g.stats).to.include({ queued: 10, sources: 10, dropped: 9 });
  });

  it('closes a connection once it has waited maxWaitMs even when no slot frees (checked every second)', () => {
    const { g, started } = gate(1, { slotMs: 1e9, maxWaitMs: 5000 });
    const [a, b] = [new FakeConn('a'), new FakeConn('b')];
    g.arrived(a);
    g.arrived(b);
    clock.tick(5999);
    expect(b.destroyed).to.equal(false);
    clock.tick(1);
    expect(b.destroyed).to.equal(true);
    expect(g.stats).to.include({ queued: 0, dropped: 1 });
    expect(started).to.deep.equal(['a']);
    clock.tick(60_000); // no sweep left running with nothing waiting
    expect(clock.countTimers()).to.equal(1); // a's slot timer only
  });

  it('skips a waiting connection that was closed meanwhile (it would hold a slot for slotMs)', () => {
    const { g, started } = gate(1, { slotMs: 1e9 });
    const [a, b, c] = ['a', 'b', 'c'].map((n) => new FakeConn(n));
    g.arrived(a!);
    g.arrived(b!);
    g.arrived(c!);
    b!.destroy();
    g.done(a!);
    expect(started).to.deep.equal(['a', 'c']);
    expect(g.stats).to.include({ inProgress: 1, queued: 0, dropped: 0 });
  });

  it('sourceOf: IPv4 as is (also IPv4-mapped), IPv6 by its /64', () => {
    expect(sourceOf('192.0.2.1')).to.equal('192.0.2.1');
    expect(sourceOf('::ffff:192.0.2.1')).to.equal('192.0.2.1');
    expect(sourceOf('::FFFF:192.0.2.1')).to.equal('192.0.2.1');
    expect(sourceOf('2001:db8:0:1:2:3:4:5')).to.equal('2001:db8:0:1::/64');
    expect(sourceOf('2001:0DB8:0000:0001::9')).to.equal('2001:db8:0:1::/64');
    expect(sourceOf('2001:db8::1')).to.equal('2001:db8:0:0::/64');
    expect(sourceOf('::1')).to.equal('0:0:0:0::/64');
    expect(sourceOf('fe80::1%eth0')).to.equal('fe80:0:0:0::/64');
    expect(sourceOf('64:ff9b::192.0.2.33')).to.equal('64:ff9b:0:0::/64');
    expect(sourceOf('2001:db8:0:1:2:3:4:5:6')).to.equal('2001:db8:0:1:2:3:4:5:6'); // not an address: itself
    expect(sourceOf(undefined)).to.equal('');
  });

  it('keeps arrival order through many waiting connections (the queue compacts)', () => {
    const { g, started } = gate(1, { maxQueued: 100_000, slotMs: 1e9, maxWaitMs: 1e9 });
    const cs = Array.from({ length: 10_001 }, (_, i) => new FakeConn(String(i)));
    cs.forEach((x) => g.arrived(x));
    for (let i = 0; i < 10_000; i++) g.done(cs[i]!);
    expect(started.length).to.equal(10_001);
    expect(started.every((n, i) => n === String(i))).to.equal(true);
    expect(g.stats).to.include({ queued: 0, inProgress: 1 });
  });
});

describe('TLS handshake gate on a real HTTPS server', function () {
  this.timeout(20_000);
  const pki = createTestPki(['127.0.0.1']);
  let server: Server;
  let port: number;
  let g: HandshakeGate<Socket>;
  const raws: Socket[] = [];

  async function start(o: { max: number; maxWaitMs?: number; slotMs?: number }): Promise<void> {
    server = createServer({ key: pki.keyPem, cert: pki.certPem, pauseOnConnect: true }, (_req, res) => res.end('hello'));
    g = gateTlsHandshakes(server, { maxInProgress: o.max, maxWaitMs: o.maxWaitMs ?? 5000, slotMs: o.slotMs ?? 2000, maxQueued: 100, clock: systemClock });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  }
  afterEach(async () => {
    raws.splice(0).forEach((s) => s.destroy());
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  /** A TCP connection that never starts TLS: it holds a slot until slotMs. */
  async function silent(): Promise<Socket> {
    const s = netConnect(port, '127.0.0.1');
    raws.push(s);
    s.on('error', () => {});
    await once(s, 'connect');
    return s;
  }

  function get(agent: HttpsAgent | false = false): Promise<{ body: string; ms: number } | { error: string; ms: number }> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', ca: pki.caCertPem, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ body, ms: Date.now() - t0 }));
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, ms: Date.now() - t0 }));
      req.end();
    });
  }

  it('serves TLS through the gate: a waiting connection is not read early, so its ClientHello reaches the TLS layer whole', async () => {
    await start({ max: 1, slotMs: 600 });
    await silent(); // holds the only slot for 600 ms
    const r = await get();
    expect(r).to.have.property('body', 'hello');
    expect(r.ms).to.be.within(400, 3000); // it waited for the slot, then its handshake worked
    expect(g.stats.expired).to.equal(1);
  });

  it('a secure handshake frees its slot at once, while its connection stays open (the next waits for no timer)', async () => {
    await start({ max: 1, slotMs: 60_000 });
    const keepAlive = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: pki.caCertPem });
    try {
      const first = await get(keepAlive);
      expect(first).to.have.property('body', 'hello');
      expect(await new Promise<number>((r) => server.getConnections((_e, n) => r(n)))).to.equal(1); // still open
      expect(g.stats).to.include({ inProgress: 0, expired: 0 });
      const rs = await Promise.all([get(), get()]);
      expect(rs.map((r) => ('body' in r ? r.body : r.error))).to.deep.equal(['hello', 'hello']);
      expect(g.stats).to.include({ expired: 0, dropped: 0 });
    } finally {
      keepAlive.destroy();
    }
  });

  it('a socket that closes before TLS frees its slot', async () => {
    await start({ max: 1, slotMs: 60_000 });
    const s = await silent();
    const pending = get();
    await new Promise((r) => setTimeout(r, 100));
    expect(g.stats).to.include({ inProgress: 1, queued: 1 });
    s.destroy();
    const r = await pending;
    expect(r).to.have.property('body', 'hello');
  });

  it('closes a connection that waited longer than maxWaitMs: the client sees a reset before TLS, not a hang', async () => {
    await start({ max: 1, maxWaitMs: 300, slotMs: 800 });
    await silent();
    const r = await get();
    expect(r).to.have.property('error').that.matches(/ECONNRESET|socket hang up/);
    expect(r.ms).to.be.below(3000);
    expect(g.stats.dropped).to.equal(1);
  });

  it('a flood of silent connections from one address does not starve a client from another', async () => {
    // 2 slots, each held 1 s by a connection that sends nothing. In arrival order the client below
    // would wait behind 6 silent ones: 3 s, past its 2.5 s wait limit, and be closed unserved.
    await start({ max: 2, slotMs: 1000, maxWaitMs: 2500 });
    const flood: Socket[] = [];
    for (let i = 0; i < 8; i++) {
      const s = netConnect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      raws.push(s);
      s.on('error', () => {});
      await once(s, 'connect');
      flood.push(s);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(g.stats).to.include({ inProgress: 2, queued: 6, sources: 1 });
    expect(g.stats.busiest).to.deep.equal({ source: '127.0.0.2', queued: 6 });
    const r = await get(); // from 127.0.0.1
    expect(r).to.have.property('body', 'hello');
    expect(r.ms).to.be.below(2400); // served at its first turn (in arrival order it would have been closed at 2.5 s)
    expect(g.stats.dropped).to.equal(0);
  });

  it('refuses to gate a server that reads connections on accept', () => {
    const s = createServer({ key: pki.keyPem, cert: pki.certPem });
    expect(() => gateTlsHandshakes(s, { maxInProgress: 1, maxWaitMs: 1, slotMs: 1, maxQueued: 1, clock: systemClock })).to.throw(/pauseOnConnect/);
  });
});

describe('TLS handshake gate in the cloud', function () {
  this.timeout(20_000);

  it('the cloud gates its TLS listener, and a shutdown closes the connections still waiting at once', async () => {
    const pki = createTestPki(['127.0.0.1']);
    const cloud = await startInprocCloud({ tls: { cert: pki.certPem, key: pki.keyPem, maxConcurrentHandshakes: 1 } });
    const open = async (): Promise<{ s: Socket; closed: Promise<number> }> => {
      const s = netConnect(cloud.port, '127.0.0.1');
      s.on('error', () => {});
      const closed = once(s, 'close').then(() => Date.now());
      await once(s, 'connect');
      return { s, closed };
    };
    const holder = await open(); // holds the only slot (sends nothing, for up to 2 s)
    const waiting = await open();
    const late = await open();
    const t0 = Date.now();
    await cloud.shutdown();
    // The waiting ones were closed by the shutdown, not by the 8 s wait limit.
    expect((await waiting.closed) - t0).to.be.below(1500);
    expect((await late.closed) - t0).to.be.below(1500);
    holder.s.destroy();
  });
});
