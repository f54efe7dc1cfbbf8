/**
 * Tunnel authentication and session identity: nonce signatures, replay, versions, epochs,
 * revocation, storm control.
 */
import { expect } from 'chai';
import { sign as cryptoSign } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import WebSocket from 'ws';
import { CloseCode } from '../../src/protocol/codes.js';
import { decodeMessage, encodeFrame, jsonPayload, type Frame } from '../../src/protocol/frame.js';
import { DEFAULT_LIMITS, PROTOCOL_MAX, authMessage } from '../../src/protocol/messages.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { TunnelError } from '../../src/connector/tunnel-client.js';
import { connectAs, pairInproc, startInprocCloud, type TestIdentity } from '../helpers/inproc.js';
import { until } from '../helpers/procs.js';
import { systemClock } from '../../src/common/clock.js';

/** A hand-driven WebSocket peer that plays the connector. */
class RawPeer {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => this.frames.push(...decodeMessage(d, 16 << 20)));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }
  static open(cloud: CloudServer): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${cloud.port}/api/v1/tunnel`);
      const p = new RawPeer(ws);
      ws.once('open', () => resolve(p));
      ws.once('error', reject);
    });
  }
  async nonce(): Promise<Buffer> {
    const f = await until(() => this.frames.find((x) => x.kind === 'hello'), 3000, 'cloud HELLO');
    return Buffer.from(JSON.parse((f as Extract<Frame, { kind: 'hello' }>).json.toString()).nonce, 'base64url');
  }
  send(...fs: Frame[]): void {
    this.ws.send(Buffer.concat(fs.map(encodeFrame)));
  }
  goaway(): Promise<{ code: string; message: string }> {
    return until(
      () => {
        const g = this.frames.find((f) => f.kind === 'goaway') as Extract<Frame, { kind: 'goaway' }> | undefined;
        return g ? (JSON.parse(g.json.toString()) as { code: string; message: string }) : undefined;
      },
      3000,
      'GOAWAY',
    );
  }
}

function helloFor(id: TestIdentity, protocol = 1): Buffer {
  return jsonPayload({ protocol, software: 'raw/1', hostname: 'h', connectorId: id.connectorId, limits: DEFAULT_LIMITS, heartbeatMs: 15000, targets: [] });
}

describe('tunnel authentication', function () {
  this.timeout(20_000);
  let cloud: CloudServer;
  let id: TestIdentity;

  before(async () => {
    cloud = await startInprocCloud();
    id = await pairInproc(cloud);
  });
  after(() => cloud.shutdown());

  it('accepts a connector that signs the fresh nonce and its HELLO with its key', async () => {
    const c = await connectAs(cloud, id);
    expect(c.welcome.connectorId).to.equal(id.connectorId);
    expect(c.welcome.tenant).to.equal('acme');
    expect(cloud.registry.get(id.connectorId)?.epoch).to.equal(c.welcome.epoch);
    c.session.close();
  });

  it('refuses a replayed authentication (an old signature over an old nonce)', async () => {
    const first = await RawPeer.open(cloud);
    const hello = helloFor(id);
    const sig = cryptoSign('sha256', authMessage(await first.nonce(), hello), id.privateKeyPem).toString('base64url');
    first.ws.close();
    const second = await RawPeer.open(cloud);
    await second.nonce();
    second.send({ kind: 'hello', json: hello }, { kind: 'auth', json: jsonPayload({ alg: 'rsa-sha256', signature: sig }) });
    const g = await second.goaway();
    expect(g.code).to.equal('AUTH_FAILED');
    expect(g.message).to.match(/signature does not match/);
    await until(() => second.closed, 3000, 'close');
    expect(second.closed!.code).to.equal(CloseCode.AUTH_FAILED);
  });

  it('refuses a HELLO altered after signing (the signature covers its bytes)', async () => {
    const p = await RawPeer.open(cloud);
    const nonce = await p.nonce();
    const sig = cryptoSign('sha256', authMessage(nonce, helloFor(id)), id.privateKeyPem).toString('base64url');
    const altered = Buffer.from(helloFor(id).toString().replace('"targets":[]', '"targets":["evil"]'));
    p.send({ kind: 'hello', json: altered }, { kind: 'auth', json: jsonPayload({ alg: 'rsa-sha256', signature: sig }) });
    expect((await p.goaway()).code).to.equal('AUTH_FAILED');
  });

  it('refuses a connector signing with another key than the one certified', async () => {
    const other = await pairInproc(cloud);
    await expectRefused(connectAs(cloud, { ...id, privateKeyPem: other.privateKeyPem }), 'TUNNEL_AUTH_FAILED', /signature/);
  });

  it('refuses an unknown connector id with a clear reason', async () => {
    await expectRefused(connectAs(cloud, { ...id, connectorId: 'cn_0123456789abcdef0123' }), 'TUNNEL_AUTH_FAILED', /unknown connector/);
  });

  it('refuses an incompatible protocol version, naming both ranges', async () => {
    const p = await RawPeer.open(cloud);
    const nonce = await p.nonce();
    const hello = helloFor(id, 7);
    const sig = cryptoSign('sha256', authMessage(nonce, hello), id.privateKeyPem).toString('base64url');
    p.send({ kind: 'hello', json: hello }, { kind: 'auth', json: jsonPayload({ alg: 'rsa-sha256', signature: sig }) });
    const g = await p.goaway();
    expect(g.code).to.equal('UNSUPPORTED_VERSION');
    expect(g.message).to.contain('protocol 7').and.contain(`1..${PROTOCOL_MAX}`).and.contain('upgrade the cloud');
    await until(() => p.closed, 3000, 'close');
    expect(p.closed!.code).to.equal(CloseCode.UNSUPPORTED_VERSION);
  });

  it('speaks the version the connector chose: END frames to a protocol 1 connector, END_STREAM flags to a protocol 2 one', async () => {
    const c = await connectAs(cloud, id);
    expect(c.session.version).to.equal(2);
    expect(cloud.registry.get(id.connectorId)!.session.version).to.equal(2);
    const view = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/connectors/${id.connectorId}`, { headers: { authorization: `Bearer ${cloud.config.adminToken}` } });
    expect(((await view.json()) as { session: { protocol: number } }).session.protocol, 'the admin API shows it').to.equal(2);
    c.session.close();
    for (const version of [1, 2]) {
      const p = await RawPeer.open(cloud);
      const hello = helloFor(id, version);
      const sig = cryptoSign('sha256', authMessage(await p.nonce(), hello), id.privateKeyPem).toString('base64url');
      p.send({ kind: 'hello', json: hello }, { kind: 'auth', json: jsonPayload({ alg: 'rsa-sha256', signature: sig }) });
      await until(() => p.frames.find((f) => f.kind === 'welcome'), 3000, 'WELCOME');
      const live = cloud.registry.get(id.connectorId)!;
      expect(live.session.version).to.equal(version);
      const st = live.session.openStream({ method: 'GET', path: '/x', headers: [], target: 'uem' });
      st.on('error', () => {});
      st.end();
      const open = (await until(() => p.frames.find((f) => f.kind === 'open'), 3000, 'OPEN')) as Extract<Frame, { kind: 'open' }>;
      await new Promise((r) => setTimeout(r, 50));
      if (version === 1) {
        expect(open.end, 'no flag at version 1').to.equal(false);
        expect(p.frames.some((f) => f.kind === 'end' && f.streamId === open.streamId)).to.equal(true);
      } else {
        expect(open.end, 'END_STREAM at version 2').to.equal(true);
        expect(p.frames.some((f) => f.kind === 'end')).to.equal(false);
      }
      p.ws.close();
      await until(() => p.closed, 3000, 'close');
    }
  });

  it('closes a peer that sends stream frames before WELCOME', async () => {
    const p = await RawPeer.open(cloud);
    await p.nonce();
    p.send({ kind: 'open', streamId: 2, json: jsonPayload({}) });
    expect((await p.goaway()).code).to.equal('PROTOCOL_ERROR');
  });

  it('a new session of the same connector replaces the old one at once, with a higher epoch', async () => {
    const a = await connectAs(cloud, id);
    const closedA = new Promise<{ code: number; err: string }>((r) => a.session.once('close', (i) => r({ code: i.code, err: i.error.code })));
    const b = await connectAs(cloud, id);
    expect(b.welcome.epoch).to.be.greaterThan(a.welcome.epoch);
    const info = await closedA;
    expect(info.code).to.equal(CloseCode.REPLACED);
    expect(info.err).to.equal('TUNNEL_REPLACED');
    expect(cloud.registry.get(id.connectorId)?.epoch).to.equal(b.welcome.epoch);
    // The old session's end does not unregister the new one.
    await new Promise((r) => setTimeout(r, 100));
    expect(cloud.registry.get(id.connectorId)?.session.state).to.equal('open');
    b.session.close();
  });

  it('revocation ends a live session within a second and refuses the next handshake as permanent', async () => {
    const victim = await pairInproc(cloud);
    const c = await connectAs(cloud, victim);
    const closed = new Promise<{ code: string; retryable: boolean }>((r) => c.session.once('close', (i) => r({ code: i.error.code, retryable: i.error.retryable })));
    const t0 = Date.now();
    const res = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/connectors/${victim.connectorId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${cloud.config.adminToken}` },
    });
    expect(res.status).to.equal(204);
    const info = await closed;
    expect(Date.now() - t0).to.be.below(1000);
    expect(info).to.deep.equal({ code: 'TUNNEL_REVOKED', retryable: false });
    await expectRefused(connectAs(cloud, victim), 'TUNNEL_REVOKED', /revoked/);
  });

  it('storm control: past maxPendingHandshakes, upgrades get 503 with a Retry-After appointment', async () => {
    const small = await startInprocCloud({ maxPendingHandshakes: 1 });
    try {
      const hog = await RawPeer.open(small); // holds the only handshake slot (never answers)
      await hog.nonce();
      const err = await connectAs(small, id).then(
        () => undefined,
        (e: unknown) => e as TunnelError,
      );
      expect(err).to.be.instanceOf(TunnelError);
      expect(err!.code).to.equal('TUNNEL_OVERLOADED');
      expect(err!.retryable).to.equal(true);
      // The first appointment: one second on (one handshake in progress, well within a second's share).
      expect(err!.retryAfterMs).to.equal(1000);
      hog.ws.close();
    } finally {
      await small.shutdown();
    }
  });

  it('storm control: malformed upgrades (400 from the WebSocket layer) do not stay counted as handshakes in progress', async () => {
    const small = await startInprocCloud({ maxPendingHandshakes: 2 });
    try {
      const statuses: string[] = [];
      for (const headers of ['Upgrade: websocket\r\nConnection: Upgrade\r\n', 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n', 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n']) {
        const s = netConnect(small.port, '127.0.0.1');
        s.on('error', () => {});
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString()));
        s.write(`GET /api/v1/tunnel HTTP/1.1\r\nHost: x\r\n${headers}\r\n`);
        await once(s, 'close');
        statuses.push(got.split('\r\n')[0]!);
      }
      expect(statuses).to.deep.equal(['HTTP/1.1 400 Bad Request', 'HTTP/1.1 400 Bad Request', 'HTTP/1.1 400 Bad Request']);
      await until(() => small.tunnels.pendingHandshakes === 0 || undefined, 3000, 'no handshake in progress');
      // Two slots were free all along: a real connector gets through (it is unknown here: AUTH_FAILED, not OVERLOADED).
      await expectRefused(connectAs(small, id), 'TUNNEL_AUTH_FAILED', /unknown connector/);
    } finally {
      await small.shutdown();
    }
  });

  it('storm control: every handshake that ends frees a place and counts towards the appointment rate, refused ones too', async () => {
    // Counting only established tunnels (tried) let a storm of refused connectors (revoked, unknown,
    // stalling) drive the rate to 1 a second and every appointment towards the 900 s cap.
    // The cloud's idea of the time is moved by hand, second by second; its timers stay real.
    const base = Date.now() - (Date.now() % 1000) + 100;
    let now = base;
    const small = await startInprocCloud({ maxPendingHandshakes: 1, clock: { ...systemClock, now: () => now } });
    const overloaded = async (): Promise<number | undefined> => {
      const e = await connectAs(small, id).then(
        () => undefined,
        (x: unknown) => x as TunnelError,
      );
      expect(e?.code).to.equal('TUNNEL_OVERLOADED');
      return e!.retryAfterMs;
    };
    try {
      // 3 saturated seconds, each with 3 handshakes that the cloud admitted and refused (an identity it
      // does not know) and one left by its peer, and no tunnel established.
      for (let s = 0; s < 3; s++) {
        now = base + s * 1000;
        for (let j = 0; j < 3; j++) await expectRefused(connectAs(small, id), 'TUNNEL_AUTH_FAILED', /unknown connector/);
        const hog = await RawPeer.open(small);
        await hog.nonce();
        await overloaded(); // marks the second saturated
        hog.ws.close();
        await until(() => small.tunnels.pendingHandshakes === 0 || undefined, 3000, 'the hog to leave');
      }
      now = base + 3000;
      const hog = await RawPeer.open(small);
      await hog.nonce();
      // 4 ended a second (3 refused, 1 left): both fit into the next second (1 a second would give 1 s and 2 s).
      expect([await overloaded(), await overloaded()]).to.deep.equal([1000, 1000]);
      hog.ws.close();
    } finally {
      await small.shutdown();
    }
  });
});

async function expectRefused(p: Promise<unknown>, code: string, msg: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as TunnelError,
  );
  expect(err, 'should have been refused').to.be.instanceOf(TunnelError);
  expect(err!.code).to.equal(code);
  expect(err!.message).to.match(msg);
}

describe('a tunnel whose handshake is in flight when the cloud drains (found in review)', function () {
  this.timeout(30_000);
  it('is not left registered and running after shutdown() resolved', async () => {
    const cloud: CloudServer = await startInprocCloud();
    const id = await pairInproc(cloud);
    // Hold the handshake's state read (a slow disk, a reload of a large state file).
    const store = cloud.store as unknown as { read: () => Promise<unknown> };
    const realRead = store.read.bind(store);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = false;
    store.read = async () => {
      if (!held) {
        held = true;
        await gate;
      }
      return realRead();
    };
    const connecting = connectAs(cloud, id);
    while (!held) await new Promise((r) => setTimeout(r, 10));
    const stopping = cloud.shutdown();
    await new Promise((r) => setTimeout(r, 20)); // drain has begun (GOAWAY to every registered session)
    release();
    await stopping;
    const c = await connecting.catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 300));
    const registered = cloud.registry.size;
    const clientState = c instanceof Error ? `refused: ${c.message}` : c.session.state;
    if (!(c instanceof Error)) c.session.close();
    expect(registered, 'sessions registered after the drain').to.equal(0);
    expect(clientState).to.not.equal('open');
    expect(clientState).to.match(/shutting down/);
  });
});
