import { expect } from 'chai';
import { MessagePool } from '../../src/protocol/message-pool.js';

const parts = (sizes: number[], seed: number): Buffer[] => sizes.map((n, k) => Buffer.alloc(n, (seed + k) & 0xff));

describe('message pool', () => {
  it('leaves messages under half a buffer, and oversized ones, to Buffer.concat', () => {
    const pool = new MessagePool(64 * 1024, 2);
    expect(pool.assemble(parts([100, 200], 1), 300)).to.equal(undefined);
    expect(pool.assemble(parts([16 * 1024, 16 * 1024 - 1], 1), 32 * 1024 - 1)).to.equal(undefined);
    expect(pool.assemble(parts([40 * 1024, 40 * 1024], 1), 80 * 1024)).to.equal(undefined);
    expect(pool.outstanding).to.equal(0);
  });

  it('assembles the parts in order into a view of exactly the message size', () => {
    const pool = new MessagePool(64 * 1024, 2);
    const ps = parts([9, 32 * 1024, 7, 20_000], 3);
    const total = ps.reduce((a, p) => a + p.length, 0);
    const got = pool.assemble(ps, total)!;
    expect(got.message.length).to.equal(total);
    expect(got.message.equals(Buffer.concat(ps))).to.equal(true);
    expect(got.backing.length).to.equal(64 * 1024);
  });

  it('reuses a buffer only after it was given back, and keeps at most maxFree', () => {
    const pool = new MessagePool(64 * 1024, 1);
    const n = pool.minBytes;
    const a = pool.assemble(parts([n], 1), n)!;
    const b = pool.assemble(parts([n], 2), n)!;
    expect(b.backing).to.not.equal(a.backing); // a is still out
    expect(a.message.every((x) => x === 1)).to.equal(true);
    pool.release(a.backing);
    pool.release(b.backing); // over maxFree: dropped
    expect(pool.freeCount).to.equal(1);
    expect(pool.outstanding).to.equal(0);
    const c = pool.assemble(parts([n], 3), n)!;
    expect(c.backing).to.equal(a.backing);
    expect(c.message.every((x) => x === 3)).to.equal(true);
  });
});

describe('message pool headroom', () => {
  it('keeps `headroom` spare bytes of the same buffer in front of every message, and recycles such buffers', () => {
    const pool = new MessagePool(64 * 1024, 1, 14);
    const n = pool.minBytes + 3;
    const a = pool.assemble(parts([n - 3, 3], 5), n)!;
    expect(a.backing.length).to.equal(14 + 64 * 1024);
    expect(a.message.buffer).to.equal(a.backing.buffer);
    expect(a.message.byteOffset - a.backing.byteOffset).to.equal(14);
    expect(a.message.equals(Buffer.concat(parts([n - 3, 3], 5)))).to.equal(true);
    pool.release(a.backing);
    expect(pool.freeCount).to.equal(1);
    expect(pool.assemble(parts([n], 6), n)!.backing).to.equal(a.backing);
  });
});
