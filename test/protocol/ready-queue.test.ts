/**
 * ReadyQueue: the semantics the session's round robin relied on from a Map (insertion order, add()
 * of a queued stream keeps its place, delete, take the first), checked against a Map on random
 * operations, and links cleared on removal so a stream out of the queue points at nothing.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { ReadyQueue, type ReadyLinks } from '../../src/protocol/ready-queue.js';

class Item implements ReadyLinks<Item> {
  readyPrev: Item | null = null;
  readyNext: Item | null = null;
  readyQueued = false;
  constructor(readonly id: number) {}
}

describe('ReadyQueue', () => {
  it('behaves as a Map used as a queue: order, add() of a queued item keeps its place, delete, shift, size', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), k: fc.integer({ min: 0, max: 15 }) }),
      fc.record({ kind: fc.constant('delete' as const), k: fc.integer({ min: 0, max: 15 }) }),
      fc.record({ kind: fc.constant('shift' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const items = Array.from({ length: 16 }, (_, i) => new Item(i));
        const model = new Map<number, Item>();
        const q = new ReadyQueue<Item>();
        for (const o of ops) {
          if (o.kind === 'add') {
            if (!model.has(o.k)) model.set(o.k, items[o.k]!);
            q.add(items[o.k]!);
          } else if (o.kind === 'delete') {
            expect(q.delete(items[o.k]!)).to.equal(model.delete(o.k));
          } else {
            const first = model.values().next().value as Item | undefined;
            if (first) model.delete(first.id);
            expect(q.shift()).to.equal(first);
          }
          expect(q.size).to.equal(model.size);
        }
        expect(q.toArray()).to.deep.equal([...model.values()]);
        for (const it of items) {
          expect(it.readyQueued).to.equal(model.has(it.id));
          // An item out of the queue keeps no link to one still in it (nor to anything else).
          if (!model.has(it.id)) expect([it.readyPrev, it.readyNext]).to.deep.equal([null, null]);
        }
      }),
    );
  });

  it('round robin: a stream taken from the front and re-added goes behind the others', () => {
    const [a, b, c] = [new Item(1), new Item(2), new Item(3)];
    const q = new ReadyQueue<Item>();
    q.add(a);
    q.add(b);
    q.add(c);
    q.add(a); // already queued: stays first
    const order: number[] = [];
    for (let i = 0; i < 6; i++) {
      const s = q.shift()!;
      order.push(s.id);
      if (i < 3) q.add(s);
    }
    expect(order).to.deep.equal([1, 2, 3, 1, 2, 3]);
    expect(q.size).to.equal(0);
    expect(q.shift()).to.equal(undefined);
  });
});
