import { expect } from 'chai';
import fc from 'fast-check';
import { Backoff } from '../../src/connector/backoff.js';

const opts = { baseMs: 1000, capMs: 60_000, stableMs: 60_000 };

describe('backoff', () => {
  it('full jitter: every delay lies in [0, min(cap, base*2^attempt, outage so far)]', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 30_000 }), { minLength: 1, maxLength: 40 }), fc.double({ min: 0, max: 1, noNaN: true }), (gaps, r) => {
        const b = new Backoff({ ...opts, random: () => r });
        let now = 1_000_000;
        const start = now;
        gaps.forEach((gap, i) => {
          now += gap;
          const d = b.next(now);
          const exp = Math.min(60_000, 1000 * 2 ** i);
          const outage = Math.max(1000, now - start);
          expect(d).to.be.at.least(0);
          expect(d).to.be.at.most(Math.min(exp, outage) + 1);
        });
      }),
    );
  });

  it('grows exponentially up to the cap during a long outage', () => {
    const b = new Backoff({ ...opts, random: () => 1 });
    let now = 0;
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const d = b.next(now);
      delays.push(d);
      now += d;
    }
    // Bounded by elapsed outage at first, then by the exponential, then by the cap.
    expect(delays[0]).to.equal(1000);
    expect(Math.max(...delays)).to.equal(60_000);
    for (let i = 1; i < delays.length; i++) expect(delays[i]).to.be.at.least(delays[i - 1]!);
  });

  it('after a short outage the next wait is short, however many attempts failed', () => {
    const b = new Backoff({ ...opts, random: () => 1 });
    let now = 0;
    for (let i = 0; i < 20; i++) now += Math.min(b.next(now), 200); // fast failing dials during 4 s
    expect(now).to.be.at.most(4000);
    expect(b.next(now)).to.be.at.most(4000);
  });

  it('resets after a connection that stayed up for the stable period, not before', () => {
    const b = new Backoff({ ...opts, random: () => 1 });
    for (let i = 0; i < 6; i++) b.next(i * 100_000);
    b.connected();
    b.disconnected(1_000_000 + 30_000, 1_000_000);
    expect(b.attempts).to.equal(6);
    b.connected();
    b.disconnected(2_000_000 + 60_000, 2_000_000);
    expect(b.attempts).to.equal(0);
  });

  it('honours the cloud\'s retry-after as a floor, with at most a second (or half of it) of jitter above it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (floor, r) => {
        const b = new Backoff({ ...opts, random: () => r });
        const d = b.next(0, floor);
        expect(d).to.be.at.least(floor);
        expect(d).to.be.at.most(floor + Math.min(1000, floor * 0.5) + 1);
      }),
    );
    // An appointment 30 s out is kept within its second, not stretched to 45 s.
    const late = new Backoff({ ...opts, random: () => 0.999 });
    expect(late.next(0, 30_000)).to.be.below(31_000);
  });

  it('spreads a storm: many connectors failing at once do not retry in lockstep', () => {
    const delays = Array.from({ length: 1000 }, () => new Backoff(opts)).map((b) => {
      b.next(0);
      b.next(2000);
      return b.next(4000);
    });
    const buckets = new Array(4).fill(0);
    for (const d of delays) buckets[Math.min(3, Math.floor(d / 1000))]++;
    // Roughly uniform over [0, 4 s): no bucket holds more than a third.
    for (const n of buckets) expect(n).to.be.below(333);
  });

  it('a tunnel the cloud drops a moment after it opens, again and again, still backs off (found in review)', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000, stableMs: 60_000, random: () => 1 });
    let now = 0;
    const delays: number[] = [];
    for (let i = 0; i < 30; i++) {
      b.connected();
      const since = now;
      now += 500; // dropped half a second after WELCOME, no retry-after
      b.disconnected(now, since);
      const d = b.next(now);
      delays.push(d);
      now += d;
    }
    // The outage runs from the first drop: the ceiling grows with it up to the cap (it fell back to
    // baseMs after every short session: 30 redials in ~45 s, forever).
    expect(Math.max(...delays), `delays: ${delays.join(',')}`).to.equal(60_000);
    // A session that stays up for stableMs ends the outage and resets the attempts: back to short delays.
    b.connected();
    const since = now;
    now += 60_000;
    b.disconnected(now, since);
    expect(b.next(now)).to.equal(1000);
  });
});
