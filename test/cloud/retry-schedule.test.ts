/**
 * Storm control's appointments (RetrySchedule): refused connectors are spread over whole seconds at
 * the rate the cloud has shown it completes handshakes, starting when the admitted ones should be
 * done, and never booked beyond a second's share while a later second has room.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { RetrySchedule } from '../../src/cloud/retry-schedule.js';

const T0 = Date.parse('2026-11-23T22:00:00Z');

describe('cloud: retry appointments for refused tunnel upgrades (RetrySchedule)', () => {
  it('before any measurement, fills seconds at the floor rate, from the minimum delay on', () => {
    const r = new RetrySchedule({ minDelayS: 1, maxDelayS: 900, minPerS: 100 });
    const after = Array.from({ length: 1000 }, () => r.refused(T0, 0));
    for (let k = 1; k <= 10; k++) expect(after.filter((a) => a === k), `second ${k}`).to.have.length(100);
    expect(Math.max(...after)).to.equal(10);
    expect(r.bookedAt(T0, 11)).to.equal(0);
  });

  it('learns the rate from seconds in which it refused upgrades, and starts after the admitted backlog', () => {
    const r = new RetrySchedule({ minDelayS: 1, maxDelayS: 900, minPerS: 50 });
    // Second 0: saturated (a refusal), 300 handshakes completed.
    r.refused(T0, 512);
    for (let i = 0; i < 300; i++) r.completed(T0 + 100 + i);
    // A second that was not saturated does not count, however many completed in it.
    for (let i = 0; i < 900; i++) r.completed(T0 + 1000 + i);
    const now = T0 + 2500;
    expect(r.rate(now)).to.equal(300);
    // 600 handshakes admitted and in progress: at 300/s they need 2 s, so appointments start at +2.
    const first = r.refused(now, 600);
    expect(first).to.equal(2);
    const rest = Array.from({ length: 599 }, () => r.refused(now, 600));
    expect(rest.filter((a) => a === 2)).to.have.length(299);
    expect(rest.filter((a) => a === 3)).to.have.length(300);
  });

  it('takes the mean of the saturated seconds, keeps the floor when they were slow (a cold start), and forgets old seconds', () => {
    const r = new RetrySchedule({ minDelayS: 1, maxDelayS: 900, minPerS: 200, windowS: 10 });
    r.refused(T0, 10);
    for (let i = 0; i < 40; i++) r.completed(T0 + i);
    expect(r.rate(T0 + 1000)).to.equal(200);
    r.refused(T0 + 1000, 10);
    for (let i = 0; i < 700; i++) r.completed(T0 + 1000 + i);
    r.refused(T0 + 2000, 10);
    for (let i = 0; i < 500; i++) r.completed(T0 + 2000 + i);
    // The mean of the saturated seconds (40, 700, 500), not the best one: completions come in bursts.
    expect(r.rate(T0 + 3000)).to.equal(413);
    // A slow machine: once 3 seconds are measured, their mean stands, below the floor too.
    const slow = new RetrySchedule({ minDelayS: 1, maxDelayS: 900, minPerS: 200 });
    for (let sec = 0; sec < 3; sec++) {
      slow.refused(T0 + sec * 1000, 10);
      for (let i = 0; i < 50 + 10 * sec; i++) slow.completed(T0 + sec * 1000 + i);
      expect(slow.rate(T0 + (sec + 1) * 1000), `after ${sec + 1} s`).to.equal(sec < 2 ? 200 : 60);
    }
    // Ten seconds on, those seconds are out of the window: back to the floor.
    r.completed(T0 + 13_500);
    expect(r.rate(T0 + 13_500)).to.equal(200);
  });

  it('never books a second beyond the rate while a later one has room, and overbooks only at the cap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 400 }), fc.integer({ min: 0, max: 200 }), (perS, n, pending) => {
        const r = new RetrySchedule({ minDelayS: 2, maxDelayS: 20, minPerS: perS });
        const after = Array.from({ length: n }, () => r.refused(T0, pending));
        const from = Math.max(2, Math.ceil(pending / perS));
        for (const a of after) expect(a).to.be.within(Math.min(from, 20), 20);
        for (let k = from; k < 20; k++) expect(r.bookedAt(T0, k)).to.be.at.most(perS);
        // Sorted appointments are contiguous seconds: no gap before the last booked one.
        const seconds = [...new Set(after)].sort((x, y) => x - y);
        seconds.forEach((k, i) => expect(k).to.equal(seconds[0]! + i));
      }),
    );
  });
});
