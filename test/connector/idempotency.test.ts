import { expect } from 'chai';
import sinon from 'sinon';
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

  it('timed by the monotonic clock: a replay is refused however the wall clock steps, and expires when monotonic time says so', () => {
    // The default clock is performance.now; Date is what NTP steps.
    let mono = 5_000_000;
    const monoStub = sinon.stub(performance, 'now').callsFake(() => mono);
    const dateStub = sinon.stub(Date, 'now').returns(1_700_000_000_000);
    try {
      const c = new IdempotencyCache(10 * 60_000, 100);
      expect(c.claim('post-1')).to.equal(true);
      mono += 60_000; // a minute later the client replays it, after NTP moved the wall clock an hour ahead
      dateStub.returns(1_700_000_000_000 + 3600_000);
      expect(c.claim('post-1'), 'the replay after a step forward').to.equal(false);
      dateStub.returns(1_700_000_000_000 - 3600_000);
      mono += 10 * 60_000; // the TTL has passed in monotonic time, the wall clock stands an hour back
      expect(c.claim('post-1'), 'expired by monotonic time, whatever the wall clock says').to.equal(true);
    } finally {
      monoStub.restore();
      dateStub.restore();
    }
  });
});
