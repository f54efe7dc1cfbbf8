import { expect } from 'chai';
import { systemClock } from '../../src/common/clock.js';
import { silentLogger } from '../../src/common/log.js';
import { PresenceBook } from '../../src/cloud/presence-book.js';
import type { CloudStore } from '../../src/cloud/state.js';
import { pairInproc, startInprocCloud } from '../helpers/inproc.js';
import { until } from '../helpers/procs.js';

describe('presence book', function () {
  this.timeout(20_000);

  it('notes whose write failed are written again at the next batch time, without another note (found in review)', async () => {
    const cloud = await startInprocCloud();
    const { connectorId } = await pairInproc(cloud);
    const store = cloud.store;
    // The first write fails as when the CLI holds the lock (STATE_LOCKED) or the disk is full.
    let calls = 0;
    const failingOnce = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop !== 'update') return Reflect.get(target, prop, receiver) as unknown;
        return async (...args: Parameters<CloudStore['update']>) => {
          if (++calls === 1) throw Object.assign(new Error('cloud state is locked by another process'), { code: 'STATE_LOCKED' });
          return target.update(...args);
        };
      },
    });
    const book = new PresenceBook(failingOnce, silentLogger(), systemClock, 300);
    book.note(connectorId, { targets: ['uem'] }, { soon: true });
    await until(async () => (await store.read()).connectors[connectorId]?.targets.includes('uem'), 5000, 'the targets written after the failed attempt');
    expect(calls).to.equal(2);
    await book.stop();
    await cloud.shutdown();
  });
});
