import { expect } from 'chai';
import { Heartbeat, MAX_PINGS_OUTSTANDING } from '../../src/protocol/heartbeat.js';

describe('heartbeat rule (no I/O)', () => {
  function setup() {
    let t = 1000;
    return { hb: new Heartbeat(() => t), advance: (ms: number) => (t += ms) };
  }

  it('pings every interval; the peer is dead only after two whole silent intervals with a PING unanswered', () => {
    const { hb } = setup();
    hb.nextPing(); // the first, at the start
    expect(hb.tick().kind, 'first interval: it heard (the start counts)').to.equal('ping');
    expect(hb.tick().kind, 'one silent interval is not enough (jitter on a slow link)').to.equal('ping');
    expect(hb.tick().kind).to.equal('dead');
  });

  it('any byte heard resets the count, even with every PING unanswered (a PONG stuck behind bulk data)', () => {
    const { hb } = setup();
    hb.nextPing();
    for (let i = 0; i < 20; i++) {
      hb.heard();
      expect(hb.tick().kind).to.equal('ping');
    }
    expect(hb.tick().kind).to.equal('ping');
    expect(hb.tick().kind).to.equal('dead');
  });

  it('silence with no PING outstanding is not death (every PING answered)', () => {
    const { hb } = setup();
    for (let i = 0; i < 5; i++) {
      const t = hb.tick();
      expect(t.kind).to.equal('ping');
      if (t.kind === 'ping') expect(hb.pong(t.data)).to.be.a('number');
    }
  });

  it('a PONG gives the round trip from the monotonic clock in whole ms and answers every older PING; an unknown PONG gives none', () => {
    const { hb, advance } = setup();
    const a = hb.nextPing();
    advance(10);
    const b = hb.nextPing();
    advance(2.6);
    expect(hb.pong(b)).to.equal(3);
    expect(hb.rttMs).to.equal(3);
    expect(hb.pong(a), 'answered by the later PONG already').to.equal(undefined);
    expect(hb.pong(Buffer.alloc(8, 7))).to.equal(undefined);
    expect(hb.rttMs, 'unchanged by a PONG it did not ask for').to.equal(3);
  });

  it(`remembers only the newest ${MAX_PINGS_OUTSTANDING} PINGs, each with a distinct payload`, () => {
    const { hb } = setup();
    const sent = Array.from({ length: MAX_PINGS_OUTSTANDING + 2 }, () => hb.nextPing());
    expect(new Set(sent.map((d) => d.toString('hex'))).size).to.equal(sent.length);
    expect(hb.pong(sent[0]!), 'the oldest were forgotten').to.equal(undefined);
    expect(hb.pong(sent[2]!)).to.be.a('number');
  });
});
