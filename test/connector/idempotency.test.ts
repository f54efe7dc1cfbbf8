import { expect } from 'chai';
import { IdempotencyCache } from '../../src/connector/idempotency.js';

describe('idempotency cache (non-idempotent requests never run twice)', () => {
  let t = 0;
  const now = (): number => t;

  it('refuses a key claimed within the TTL, and accepts it again after', () => {
    t = 0;
    const c = new IdempotencyCache(1000, 100, now);
    expect(c.claim('a')).to.equal(true);
    t = 999;
    expect(c.claim('a')).to.equal(false);
    t = 1000;
    expect(c.claim('a')).to.equal(true);
  });

  it('forgets expired keys as new ones come, so memory follows the last TTL of traffic', () => {
    t = 0;
    const c = new IdempotencyCache(1000, 100_000, now);
    for (let i = 0; i < 5000; i++) {
      t = i; // one claim per ms: 1,000 live keys at any time
      expect(c.claim(`k${i}`)).to.equal(true);
    }
    expect(c.size).to.be.at.most(1001);
    expect(c.claim('k4500')).to.equal(false); // still within its TTL
  });

  it('never holds more than maxKeys, dropping the oldest first', () => {
    t = 0;
    const c = new IdempotencyCache(60_000, 10, now);
    for (let i = 0; i < 25; i++) c.claim(`k${i}`);
    expect(c.size).to.equal(10);
    expect(c.claim('k24')).to.equal(false);
    expect(c.claim('k0')).to.equal(true); // evicted, so claimable again
  });

  it('a step of the wall clock changes nothing: a replay a minute later is still refused after the clock jumps an hour ahead', () => {
    // The default clock is monotonic (performance.now); Date is what NTP steps.
    const realNow = Date.now;
    const c = new IdempotencyCache(10 * 60_000, 100);
    try {
      expect(c.claim('post-1')).to.equal(true);
      Date.now = () => realNow() + 3600_000;
      expect(c.claim('post-1'), 'the replay after the step').to.equal(false);
      Date.now = () => realNow() - 3600_000;
      expect(c.claim('post-1'), 'and after a step back').to.equal(false);
    } finally {
      Date.now = realNow;
    }
  });
});
