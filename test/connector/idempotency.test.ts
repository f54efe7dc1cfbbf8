import { expect } from 'chai';
import type { Clock } from '../../src/common/clock.js';
import { IdempotencyCache } from '../../src/connector/idempotency.js';

describe('idempotency cache (non-idempotent requests never run twice)', () => {
  let t = 0;
  const clock = { now: () => t } as unknown as Clock;

  it('refuses a key claimed within the TTL, and accepts it again after', () => {
    t = 0;
    const c = new IdempotencyCache(clock, 1000, 100);
    expect(c.claim('a')).to.equal(true);
    t = 999;
    expect(c.claim('a')).to.equal(false);
    t = 1000;
    expect(c.claim('a')).to.equal(true);
  });

  it('forgets expired keys as new ones come, so memory follows the last TTL of traffic', () => {
    t = 0;
    const c = new IdempotencyCache(clock, 1000, 100_000);
    for (let i = 0; i < 5000; i++) {
      t = i; // one claim per ms: 1,000 live keys at any time
      expect(c.claim(`k${i}`)).to.equal(true);
    }
    expect(c.size).to.be.at.most(1001);
    expect(c.claim('k4500')).to.equal(false); // still within its TTL
  });

  it('never holds more than maxKeys, dropping the oldest first', () => {
    t = 0;
    const c = new IdempotencyCache(clock, 60_000, 10);
    for (let i = 0; i < 25; i++) c.claim(`k${i}`);
    expect(c.size).to.equal(10);
    expect(c.claim('k24')).to.equal(false);
    expect(c.claim('k0')).to.equal(true); // evicted, so claimable again
  });
});
