import { expect } from 'chai';
import { Episodes } from '../../src/common/episodes.js';
import { systemClock } from '../../src/common/clock.js';
import { capturingLogger } from '../helpers/logs.js';

describe('failures said once per episode', () => {
  function setup() {
    let now = 1_000_000;
    const clock = { ...systemClock, now: () => now };
    const { logger, lines } = capturingLogger();
    return { ep: new Episodes(logger, clock, 60_000), lines, advance: (ms: number) => (now += ms) };
  }

  it('the first failure is said at once, repeats within a minute are counted, and the count goes with the next line after it', () => {
    const { ep, lines, advance } = setup();
    ep.failed('ws1', 'upstream_unreachable', 'upstream request failed', { target: 'ws1' });
    for (let i = 0; i < 100; i++) {
      advance(500);
      ep.failed('ws1', 'upstream_unreachable', 'upstream request failed', { target: 'ws1' });
    }
    expect(lines).to.have.length(1);
    advance(20_000); // 70 s after the first line
    ep.failed('ws1', 'upstream_unreachable', 'upstream request failed', { target: 'ws1' });
    expect(lines).to.have.length(2);
    expect(lines[1]).to.include({ level: 'warn', message: 'upstream request failed', target: 'ws1', repeated: 100, overSeconds: 70 });
  });

  it('another kind of failure is its own episode, said at once; kinds failing in turn are each counted; another key is its own', () => {
    const { ep, lines } = setup();
    ep.failed('ws1', 'upstream_unreachable', 'upstream request failed', {});
    ep.failed('ws1', 'upstream_tls', 'upstream request failed', {});
    for (let i = 0; i < 50; i++) {
      ep.failed('ws1', 'upstream_unreachable', 'upstream request failed', {});
      ep.failed('ws1', 'upstream_tls', 'upstream request failed', {});
    }
    ep.failed('epmm', 'upstream_tls', 'upstream request failed', {});
    ep.failed('epmm', 'upstream_tls', 'upstream request failed', {});
    expect(lines.map((l) => l.message)).to.have.length(3);
  });

  it('the first success after failures says so once, with how many and how long; a success without failures says nothing', () => {
    const { ep, lines, advance } = setup();
    ep.succeeded('ws1', 'upstream reachable again', { target: 'ws1' });
    expect(lines).to.deep.equal([]);
    ep.failed('ws1', 'upstream_unreachable', 'upstream request failed', {});
    for (let i = 0; i < 9; i++) ep.failed('ws1', 'upstream_unreachable', 'upstream request failed', {});
    advance(42_000);
    ep.succeeded('ws1', 'upstream reachable again', { target: 'ws1' });
    ep.succeeded('ws1', 'upstream reachable again', { target: 'ws1' });
    expect(lines).to.have.length(2);
    expect(lines[1]).to.include({ level: 'info', message: 'upstream reachable again', target: 'ws1', failures: 10, forSeconds: 42 });
    expect(lines[1]!.failedWith).to.deep.equal(['upstream_unreachable']);
  });

  it('a clock stepped back does not silence failures', () => {
    const { ep, lines, advance } = setup();
    ep.failed('ws1', 'x', 'm', {});
    advance(-3_600_000);
    ep.failed('ws1', 'x', 'm', {});
    expect(lines).to.have.length(2);
  });
});
