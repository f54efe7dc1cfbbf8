import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../../src/common/log.js';
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
});
