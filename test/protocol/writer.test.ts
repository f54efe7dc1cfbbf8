import { expect } from 'chai';
import { BATCH_BYTES, FrameWriter } from '../../src/protocol/writer.js';
import { FrameFlag, FrameType, decodeMessage, encodeHeader } from '../../src/protocol/frame.js';

describe('frame writer (the session outbox)', () => {
  function setup() {
    const sent: Buffer[] = [];
    const w = new FrameWriter({ send: (m) => sent.push(Buffer.from(m)) });
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    return { w, sent, turn };
  }
  const data = (id: number, payload: Buffer): Buffer[] => [encodeHeader(FrameType.DATA, id, payload.length), payload];

  it('frames queued in one turn leave as one message, in order', async () => {
    const { w, sent, turn } = setup();
    w.enqueue(data(2, Buffer.from('ab')));
    w.enqueue(data(4, Buffer.from('cd')));
    expect(sent).to.have.length(0);
    expect(w.queuedBytes).to.be.greaterThan(0);
    await turn();
    expect(sent).to.have.length(1);
    const frames = decodeMessage(sent[0]!, 1 << 20);
    expect(frames.map((f) => (f.kind === 'data' ? `${f.streamId}:${f.data.toString()}` : f.kind))).to.deep.equal(['2:ab', '4:cd']);
    expect(w.bytesOut).to.equal(sent[0]!.length);
  });

  it('more data joins the last DATA frame while it is unsent; not once another frame follows it, nor past the frame size', async () => {
    const { w, sent, turn } = setup();
    const parts = data(2, Buffer.from('ab'));
    const batch = w.enqueueTracked(parts);
    expect(batch).to.be.at.least(0);
    expect(w.extend(parts[0], [Buffer.from('cd')], 2, 1024)).to.equal(true);
    expect(w.extend(parts[0], [Buffer.alloc(2000)], 2000, 1024), 'past maxFrame').to.equal(false);
    w.enqueue(data(4, Buffer.from('x')));
    expect(w.extend(parts[0], [Buffer.from('ef')], 2, 1024), 'no longer the last frame').to.equal(false);
    await turn();
    const frames = decodeMessage(sent[0]!, 1 << 20);
    expect(frames[0]).to.deep.include({ kind: 'data', streamId: 2 });
    expect(frames[0]!.kind === 'data' && frames[0]!.data.toString()).to.equal('abcd');
  });

  it('an END becomes a flag on a frame still unsent, and cannot once it has left', async () => {
    const { w, sent, turn } = setup();
    const a = data(2, Buffer.from('ab'));
    const batchA = w.enqueueTracked(a);
    expect(w.flagEnd(a[0], batchA)).to.equal(true);
    await turn();
    expect(sent[0]![1]! & FrameFlag.END_STREAM).to.equal(FrameFlag.END_STREAM);
    const b = data(4, Buffer.from('cd'));
    const batchB = w.enqueueTracked(b);
    w.flush();
    expect(w.flagEnd(b[0], batchB), 'already sent').to.equal(false);
  });

  it('a message is sent as soon as it is full, and a frame flushed with it is reported as gone (-1)', () => {
    const { w, sent } = setup();
    const big = data(2, Buffer.alloc(BATCH_BYTES));
    expect(w.enqueueTracked(big)).to.equal(-1);
    expect(sent).to.have.length(1);
  });

  it('after close nothing is queued or sent', async () => {
    const { w, sent, turn } = setup();
    w.enqueue(data(2, Buffer.from('ab')));
    w.close();
    w.enqueue(data(2, Buffer.from('cd')));
    w.flush();
    await turn();
    expect(sent).to.have.length(0);
    expect(w.queuedBytes).to.equal(0);
  });
});
