import { expect } from 'chai';
import { RecvWindow, type WindowTuning } from '../../src/protocol/flow.js';

/** A tuning with a hand-driven clock and a budget the test can inspect. */
function tuning(o: { max: number; budget: number; fastMs?: number }): WindowTuning & { t: number; used: number } {
  const t = {
    t: 0,
    used: 0,
    max: o.max,
    now: () => t.t,
    fastMs: () => o.fastMs ?? 10,
    reserve: (n: number) => {
      if (t.used + n > o.budget) return false;
      t.used += n;
      return true;
    },
  };
  return t;
}

const KiB = 1024;

describe('receive window auto-tuning', () => {
  it('a reader consuming half its window within fastMs doubles the window, up to max, in the increment it returns', () => {
    const tu = tuning({ max: 4 * 64 * KiB, budget: 1 << 30 });
    const w = new RecvWindow(64 * KiB, tu);
    const windows: number[] = [];
    for (let i = 0; i < 6; i++) {
      const half = w.window / 2;
      w.receive(half, 1);
      tu.t += 2; // fast: 2 ms per half window
      const inc = w.consumed(half);
      expect(inc, `round ${i}`).to.be.greaterThan(0);
      windows.push(w.window);
      // What the peer may still send is exactly the (possibly grown) window minus what is unread.
      expect(w.size).to.equal(w.window);
    }
    expect(windows).to.deep.equal([128 * KiB, 256 * KiB, 256 * KiB, 256 * KiB, 256 * KiB, 256 * KiB]);
    expect(w.grown).to.equal(192 * KiB);
    expect(tu.used).to.equal(192 * KiB);
  });

  it('a slow reader keeps the initial window and returns exactly what it consumed', () => {
    const tu = tuning({ max: 16 * 64 * KiB, budget: 1 << 30 });
    const w = new RecvWindow(64 * KiB, tu);
    for (let i = 0; i < 5; i++) {
      w.receive(32 * KiB, 1);
      tu.t += 50; // 32 KiB per 50 ms: the reader, not the window, is the limit
      expect(w.consumed(32 * KiB)).to.equal(32 * KiB);
    }
    expect(w.window).to.equal(64 * KiB);
    expect(tu.used).to.equal(0);
  });

  it('a stalled reader never grows its window, and the peer can never send beyond it', () => {
    const tu = tuning({ max: 16 * 64 * KiB, budget: 1 << 30 });
    const w = new RecvWindow(64 * KiB, tu);
    w.receive(64 * KiB, 1);
    tu.t += 1;
    expect(w.consumed(0)).to.equal(0);
    expect(w.window).to.equal(64 * KiB);
    expect(() => w.receive(1, 1)).to.throw(/only 0 bytes of window/);
  });

  it('growth stops when the session budget is spent; without tuning windows stay fixed', () => {
    const tu = tuning({ max: 1024 * KiB, budget: 64 * KiB });
    const a = new RecvWindow(64 * KiB, tu);
    const b = new RecvWindow(64 * KiB, tu);
    for (const w of [a, b]) {
      w.receive(32 * KiB, 1);
      tu.t += 1;
      w.consumed(32 * KiB);
    }
    expect([a.window, b.window]).to.deep.equal([128 * KiB, 64 * KiB]);
    expect(tu.used).to.equal(64 * KiB);

    const fixed = new RecvWindow(64 * KiB);
    fixed.receive(32 * KiB, 1);
    expect(fixed.consumed(32 * KiB)).to.equal(32 * KiB);
    expect(fixed.window).to.equal(64 * KiB);
  });
});

describe('receive window auto-tuning in a session', () => {
  it('a fast bulk stream grows its window; the session budget is returned when the stream ends', async () => {
    const { sessionPair, collect } = await import('../helpers/sessions.js');
    const p = sessionPair({ cloud: { initialWindow: 16 * KiB }, connector: { maxFrameSize: 16 * KiB } });
    const body = Buffer.alloc(4 * 1024 * KiB, 7);
    p.connector.on('stream', (st) => {
      st.respond({ status: 200, headers: [] });
      st.end(body);
    });
    const budget = (): number => (p.cloud as unknown as { grownBytes: number }).grownBytes;
    for (let i = 0; i < 2; i++) {
      const st = p.cloud.openStream({ method: 'GET', path: '/bulk', headers: [], target: 't' });
      st.end();
      const got = await collect(st);
      expect(got.length).to.equal(body.length);
      expect(st.recvWindow.window, `stream ${i}`).to.be.greaterThan(16 * KiB);
      await new Promise((r) => setImmediate(r));
      expect(budget(), 'grown bytes after the stream ended').to.equal(0);
    }
    p.cloud.close(1000, 'done');
    p.connector.close(1000, 'done');
  });

  it('a reader that drains a finished stream fast takes no budget (it used to keep it for the life of the tunnel)', async () => {
    // Review finding: credit returned after the peer's END still grew the window and reserved
    // budget that retire() had already settled, so slow clients of finished responses (the cloud
    // pausing on a client's backpressure) used up the budget and later bulk streams stopped growing.
    const { sessionPair, waitFor } = await import('../helpers/sessions.js');
    const p = sessionPair({ cloud: { initialWindow: 64 * KiB } });
    const body = Buffer.alloc(64 * KiB, 7);
    p.connector.on('stream', (st) => {
      st.resume();
      st.respond({ status: 200, headers: [] });
      st.end(body);
    });
    const budget = (): number => (p.cloud as unknown as { grownBytes: number }).grownBytes;
    for (let i = 0; i < 3; i++) {
      const st = p.cloud.openStream({ method: 'GET', path: '/x', headers: [], target: 't' });
      st.end();
      await new Promise((r) => st.once('response', r));
      await waitFor(() => p.cloud.activeStreams === 0, 2000, 'the whole body and END arrived, unread');
      let n = 0;
      st.on('data', (c: Buffer) => (n += c.length));
      await new Promise((r) => st.once('end', r));
      expect(n).to.equal(body.length);
      expect(budget(), `budget held after stream ${i}`).to.equal(0);
      expect(st.recvWindow.window, 'no growth for a finished stream').to.equal(64 * KiB);
    }
    p.cloud.close(1000, 'done');
    p.connector.close(1000, 'done');
  });
});
