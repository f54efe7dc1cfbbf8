import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../../src/common/log.js';
import { capturingLogger } from '../helpers/logs.js';
import { systemClock } from '../../src/common/clock.js';
import { Backoff } from '../../src/connector/backoff.js';
import { Supervisor, type TunnelState } from '../../src/connector/supervisor.js';
import { TunnelError, type Connected } from '../../src/connector/tunnel-client.js';
import { sessionPair } from '../helpers/sessions.js';

function fakeConnected(): { c: Connected; peer: ReturnType<typeof sessionPair> } {
  const peer = sessionPair();
  const c = {
    session: peer.connector,
    welcome: { sessionId: 's', epoch: 1, connectorId: 'cn_x', tenant: 't', group: 'g', serverTime: '' },
    cloud: {} as Connected['cloud'],
    remoteAddress: '127.0.0.1',
  } as Connected;
  return { c, peer };
}

describe('supervisor', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => {
    clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => clock.restore());
  const turns = async (n = 5): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };

  it('redials after failures with backoff, then reports connected and counts reconnects', async () => {
    let calls = 0;
    const sessions: ReturnType<typeof fakeConnected>[] = [];
    const sup = new Supervisor({
      clock: systemClock,
      logger: silentLogger(),
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000, random: () => 1 }),
      connect: async () => {
        calls++;
        if (calls <= 2) throw new TunnelError('TUNNEL_DIAL_FAILED', 'refused');
        const s = fakeConnected();
        sessions.push(s);
        return s.c;
      },
    });
    const states: TunnelState['state'][] = [];
    sup.on('state', (s) => states.push(s.state));
    sup.start();
    await turns();
    expect(sup.lastError?.code).to.equal('TUNNEL_DIAL_FAILED');
    expect(sup.state.state).to.equal('disconnected');
    await clock.tickAsync(1000);
    await turns();
    await clock.tickAsync(2000);
    await turns();
    expect(sup.state.state).to.equal('connected');
    expect(calls).to.equal(3);
    sessions[0]!.peer.cloudT.terminate();
    await turns();
    expect(sup.state.state).to.equal('disconnected');
    await clock.tickAsync(60_000);
    await turns();
    expect(sup.state.state).to.equal('connected');
    expect(sup.reconnects).to.equal(1);
    expect(states).to.include.members(['connecting', 'disconnected', 'connected']);
    await sup.stop(100);
    expect(sup.state.state).to.equal('stopped');
  });

  it('stops redialling when the cloud refuses for good (revoked), and says so', async () => {
    let calls = 0;
    const sup = new Supervisor({
      clock: systemClock,
      logger: silentLogger(),
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000 }),
      connect: async () => {
        calls++;
        throw new TunnelError('TUNNEL_REVOKED', 'revoked', { permanent: true });
      },
    });
    sup.start();
    await turns();
    await clock.tickAsync(600_000);
    await turns();
    expect(calls).to.equal(1);
    expect(sup.state.state).to.equal('refused');
    expect(sup.lastError?.code).to.equal('TUNNEL_REVOKED');
  });

  it('waits at least what the cloud asked (storm control) before redialling', async () => {
    let calls = 0;
    const sup = new Supervisor({
      clock: systemClock,
      logger: silentLogger(),
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000, random: () => 0 }),
      connect: async () => {
        calls++;
        throw new TunnelError('TUNNEL_OVERLOADED', 'busy', { retryAfterMs: 20_000 });
      },
    });
    sup.start();
    await turns();
    await clock.tickAsync(19_999);
    await turns();
    expect(calls).to.equal(1);
    await clock.tickAsync(2);
    await turns();
    expect(calls).to.equal(2);
    await sup.stop(0);
  });

  it('an unreachable cloud is one warning per 10 minutes with the count since, not one per redial; a new cause is said at once; the first success says how long it lasted', async () => {
    let calls = 0;
    let why: TunnelError = new TunnelError('TUNNEL_DIAL_FAILED', 'connect ECONNREFUSED 127.0.0.1:443');
    const sessions: ReturnType<typeof fakeConnected>[] = [];
    let up = false;
    const { logger, lines } = capturingLogger();
    const sup = new Supervisor({
      clock: systemClock,
      logger,
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000, random: () => 0.5 }),
      connect: async () => {
        calls++;
        if (!up) throw why;
        const s = fakeConnected();
        sessions.push(s);
        return s.c;
      },
    });
    const warned = (): Array<Record<string, unknown>> => lines.filter((l) => l.level === 'warn' && l.message === 'tunnel connection failed');
    sup.start();
    await turns();
    // Nine and a half minutes of redials (at most every 30 s once the backoff is at its cap).
    for (let i = 0; i < 57; i++) {
      await clock.tickAsync(10_000);
      await turns();
    }
    expect(calls, 'it redials all along').to.be.greaterThan(15);
    expect(warned(), 'one warning for the whole first 9.5 minutes').to.have.length(1);
    expect(warned()[0]).to.include({ code: 'TUNNEL_DIAL_FAILED', reason: 'connect ECONNREFUSED 127.0.0.1:443' });
    expect(lines.filter((l) => l.message === 'tunnel dial failed' && l.level === 'debug').length, 'each redial is still at debug').to.equal(calls);
    for (let i = 0; i < 9; i++) {
      await clock.tickAsync(10_000);
      await turns();
    }
    expect(warned(), 'the next warning after the window carries how often it recurred').to.have.length(2);
    expect(Number(warned()[1]!.repeated)).to.be.greaterThan(10);
    const before = calls;
    why = new TunnelError('TUNNEL_DIAL_FAILED', 'getaddrinfo ENOTFOUND cloud.example');
    while (calls === before) {
      await clock.tickAsync(5_000);
      await turns();
    }
    expect(warned(), 'another cause with the same code (most dial failures are TUNNEL_DIAL_FAILED) is said at once').to.have.length(3);
    expect(warned()[2]).to.include({ code: 'TUNNEL_DIAL_FAILED', reason: 'getaddrinfo ENOTFOUND cloud.example' });
    const before2 = calls;
    why = new TunnelError('TUNNEL_HANDSHAKE_TIMEOUT', 'no answer from the cloud within 10 s');
    while (calls === before2) {
      await clock.tickAsync(5_000);
      await turns();
    }
    expect(warned(), 'a different code is said at once').to.have.length(4);
    expect(warned()[3]).to.include({ code: 'TUNNEL_HANDSHAKE_TIMEOUT' });
    up = true;
    while (sup.state.state !== 'connected') {
      await clock.tickAsync(5_000);
      await turns();
    }
    const back = lines.find((l) => l.message === 'tunnel dials succeed again');
    expect(back, 'one line ends the episode').to.not.equal(undefined);
    expect(back).to.include({ level: 'info', failures: calls - 1 });
    expect((back!.failedWith as string[]).map((k) => k.split(':')[0])).to.deep.equal(['TUNNEL_DIAL_FAILED', 'TUNNEL_DIAL_FAILED', 'TUNNEL_HANDSHAKE_TIMEOUT']);
    expect(Number(back!.forSeconds)).to.be.greaterThan(600);
    // The next outage is a new episode: its first failure is said at once.
    up = false;
    sessions[0]!.peer.cloudT.terminate();
    const w = warned().length;
    while (warned().length === w) {
      await clock.tickAsync(5_000);
      await turns();
    }
    expect(warned()[w]).to.include({ code: 'TUNNEL_HANDSHAKE_TIMEOUT' });
    expect(warned()[w]!.repeated, 'a fresh episode carries no count').to.equal(undefined);
    await sup.stop(0);
  });
});
