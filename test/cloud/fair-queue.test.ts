/**
 * FairQueue against a plain model on random operations: sizes, per-key order, round-robin turns,
 * and the busiest key's count after any mix of pushes, turns, sheds and prunes.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { FairQueue } from '../../src/cloud/fair-queue.js';

type Op = { kind: 'push'; key: string } | { kind: 'shift' } | { kind: 'shed' } | { kind: 'prune'; below: number };

describe('FairQueue', () => {
  it('matches a model: each key FIFO, keys served in turn, busiest = the longest key', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'd');
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('push' as const), key }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('shift' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('shed' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('prune' as const), below: fc.integer({ min: 0, max: 60 }) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const q = new FairQueue<number>();
        // The model: per key its items; `order` the keys in turn order (a key joins at the end).
        const lanes = new Map<string, number[]>();
        let order: string[] = [];
        let n = 0;
        const drop = (k: string): void => {
          if (lanes.get(k)!.length === 0) {
            lanes.delete(k);
            order = order.filter((x) => x !== k);
          }
        };
        for (const o of ops) {
          if (o.kind === 'push') {
            if (!lanes.has(o.key)) {
              lanes.set(o.key, []);
              order.push(o.key);
            }
            lanes.get(o.key)!.push(n);
            q.push(o.key, n++);
          } else if (o.kind === 'shift') {
            const k = order.shift();
            const want = k === undefined ? undefined : lanes.get(k)!.shift();
            if (k !== undefined) {
              order.push(k);
              drop(k);
            }
            expect(q.shift()).to.equal(want);
          } else if (o.kind === 'shed') {
            const max = Math.max(0, ...[...lanes.values()].map((l) => l.length));
            const got = q.shiftBusiest();
            if (max === 0) expect(got).to.equal(undefined);
            else {
              // It came from the front of a longest key.
              const k = [...lanes.keys()].find((x) => lanes.get(x)!.length === max && lanes.get(x)![0] === got);
              expect(k, `shed ${got} is the oldest of a key with ${max} waiting`).to.not.equal(undefined);
              lanes.get(k!)!.shift();
              drop(k!);
            }
          } else {
            const want: number[] = [];
            for (const [k, l] of [...lanes]) {
              while (l.length > 0 && l[0]! < o.below) want.push(l.shift()!);
              drop(k);
            }
            expect(q.pruneFronts((x) => x < o.below).sort((x, y) => x - y)).to.deep.equal(want.sort((x, y) => x - y));
          }
          const total = [...lanes.values()].reduce((s, l) => s + l.length, 0);
          expect(q.size).to.equal(total);
          expect(q.keys).to.equal(lanes.size);
          for (const k of ['a', 'b', 'c', 'd']) expect(q.lengthOf(k)).to.equal(lanes.get(k)?.length ?? 0);
          const max = Math.max(0, ...[...lanes.values()].map((l) => l.length));
          const b = q.busiest();
          if (max === 0) expect(b).to.equal(undefined);
          else expect(b && lanes.get(b.key)?.length === max && b.count === max, `busiest ${JSON.stringify(b)}, longest ${max}`).to.equal(true);
        }
        expect(q.clear().length).to.equal([...lanes.values()].reduce((s, l) => s + l.length, 0));
        expect(q.size).to.equal(0);
        expect(q.busiest()).to.equal(undefined);
      }),
      { numRuns: 300 },
    );
  });
});
