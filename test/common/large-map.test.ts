import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { JsonStore } from '../../src/common/json-store.js';
import { JsonText, copyJson, draftOf, freezeDeep, isStored, storeRecord } from '../../src/common/large-map.js';
import { tempDir } from '../helpers/procs.js';

const Rec = z.object({ id: z.string(), n: z.number().int(), tags: z.array(z.string()).default([]), note: z.string().optional() });
type Rec = z.infer<typeof Rec>;
const Doc = z.object({ version: z.literal(1), items: z.record(z.string(), Rec), list: z.array(z.string()) });
type Doc = z.infer<typeof Doc>;

const open = (file: string) =>
  new JsonStore<Doc>({ file, schema: Doc, what: 'test doc', empty: () => ({ version: 1, items: {}, list: [] }), largeMaps: { items: Rec } });

const json = fc.jsonValue({ maxDepth: 3 });
const bytes = (t: JsonText, doc: object) => Buffer.concat(t.encode(doc)).toString();

describe('large maps of JSON documents', function () {
  this.timeout(60_000);

  it('copyJson equals structuredClone for JSON values and shares no object; storeRecord freezes all of a value and marks it', () => {
    const objects = (v: unknown, out = new Set<object>()): Set<object> => {
      if (v !== null && typeof v === 'object') {
        out.add(v);
        for (const x of Object.values(v)) objects(x, out);
      }
      return out;
    };
    fc.assert(
      fc.property(fc.oneof(json, fc.constant(JSON.parse('{"__proto__":{"x":1},"a":[{"__proto__":2}]}'))), (v) => {
        const c = copyJson(v);
        expect(c).to.deep.equal(structuredClone(v));
        expect(JSON.stringify(c)).to.equal(JSON.stringify(v));
        const mine = objects(v);
        for (const o of objects(c)) expect(mine.has(o), 'copyJson shares an object').to.equal(false);
        // storeRecord freezes all of it and marks it stored; a copy of it is neither.
        const f = storeRecord(copyJson(v));
        for (const o of objects(f)) expect(Object.isFrozen(o), 'all frozen').to.equal(true);
        if (f !== null && typeof f === 'object') {
          expect(isStored(f)).to.equal(true);
          expect(isStored(copyJson(f))).to.equal(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('JsonText writes exactly what JSON.stringify(doc, null, 2) does, with and without remembered records', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), json, { maxKeys: 5 }),
        fc.dictionary(fc.string(), json, { maxKeys: 12 }),
        fc.boolean(),
        (rest, map, freeze) => {
          const doc: Record<string, unknown> = { ...rest, big: map };
          if (freeze) for (const v of Object.values(map)) storeRecord(v);
          const t = new JsonText(new Set(['big']));
          const want = `${JSON.stringify(doc, null, 2)}\n`;
          expect(bytes(t, doc)).to.equal(want);
          expect(bytes(t, doc), 'second time (remembered entries)').to.equal(want);
          // The same frozen record under another key is not written with its old key.
          const keys = Object.keys(map);
          if (keys.length > 0) {
            const moved = { ...doc, big: { [`${keys[0]}-moved`]: map[keys[0]!] } };
            expect(bytes(t, moved)).to.equal(`${JSON.stringify(moved, null, 2)}\n`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a draft copies only the records a change reads; the stored ones stay as they are', () => {
    const base = { a: freezeDeep({ v: 1, tags: ['x'] }), b: freezeDeep({ v: 2, tags: [] as string[] }), c: freezeDeep({ v: 3, tags: [] as string[] }) };
    const { draft, copy, touched } = draftOf<{ v: number; tags: string[] }>(base);
    draft.a!.v = 10;
    draft.a!.tags.push('y');
    draft.d = { v: 4, tags: [] };
    delete draft.c;
    expect(base.a).to.deep.equal({ v: 1, tags: ['x'] });
    expect(copy.a).to.deep.equal({ v: 10, tags: ['x', 'y'] });
    expect(copy.b, 'an unread record is the stored object itself').to.equal(base.b);
    expect(copy).to.not.have.property('c');
    expect([...touched].sort()).to.deep.equal(['a', 'c', 'd']);
    // Reading every record (values, entries, spread) copies every record.
    const all = draftOf<{ v: number; tags: string[] }>(base);
    for (const r of Object.values(all.draft)) r.v++;
    expect(Object.values(base).map((r) => r.v)).to.deep.equal([1, 2, 3]);
    expect(Object.values(all.copy).map((r) => r.v)).to.deep.equal([2, 3, 4]);
  });

  it('an update rewrites the file exactly, keeps untouched records as they were, and freezes what is stored', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => {
      for (let i = 0; i < 50; i++) d.items[`k${i}`] = { id: `k${i}`, n: i, tags: [] };
    });
    const before = await s.read();
    await s.update((d) => {
      d.items.k7!.n = 700;
      d.list.push('changed');
    });
    const after = await s.read();
    expect(after.items.k7!.n).to.equal(700);
    expect(before.items.k7!.n, 'the previous snapshot is not changed under its readers').to.equal(7);
    expect(after.items.k8, 'a record the change did not read is not copied').to.equal(before.items.k8);
    expect(readFileSync(file, 'utf8')).to.equal(`${JSON.stringify(after, null, 2)}\n`);
    expect(() => {
      (after.items.k8 as Rec).n = 1;
    }, 'stored records cannot be changed outside update()').to.throw(TypeError);
    // A fresh store (another process) reads the same document.
    expect(await open(file).read()).to.deep.equal(after);
  });

  it('after a load, records are encoded a batch per event-loop turn, so the first write encodes only what changed', async () => {
    const file = join(tempDir(), 'doc.json');
    const doc: Doc = { version: 1, items: {}, list: [] };
    for (let i = 0; i < 1000; i++) doc.items[`k${i}`] = { id: `k${i}`, n: i, tags: [`t${i}`] };
    writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
    const oneShot = open(file); // a CLI command's store: it writes at most once, so does not warm
    await oneShot.read();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(oneShot.encodedRecords).to.equal(0);
    const s = new JsonStore<Doc>({ file, schema: Doc, what: 'test doc', empty: () => ({ version: 1, items: {}, list: [] }), largeMaps: { items: Rec }, warmAfterLoadMs: 0 });
    await s.read();
    expect(s.encodedRecords, 'nothing encoded in the turn that loaded').to.equal(0);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(s.encodedRecords, 'one batch per turn').to.be.within(1, 400);
    await s.warmedUp();
    expect(s.encodedRecords).to.equal(1000);
    await s.update((d) => {
      d.items.k5!.n = 5000;
    });
    expect(s.encodedRecords, 'the write encoded the changed record only').to.equal(1001);
    const after = await s.read();
    expect(readFileSync(file, 'utf8')).to.equal(`${JSON.stringify(after, null, 2)}\n`);

    // Another process rewrites the file: the reload warms the new records, not the old ones.
    const other = structuredClone(after) as Doc;
    other.items.k6!.n = 6000;
    other.items.added = { id: 'added', n: -1, tags: [] };
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(file, `${JSON.stringify(other, null, 2)}\n`, { mode: 0o600 });
    await new Promise((r) => setTimeout(r, 150)); // past the reader's 100 ms recheck
    expect((await s.read()).items.added).to.deep.equal({ id: 'added', n: -1, tags: [] });
    await s.warmedUp();
    const encoded = s.encodedRecords;
    expect(encoded).to.equal(1001 + 1001);
    await s.update((d) => {
      d.list.push('x');
    });
    expect(s.encodedRecords, 'no record changed: none encoded').to.equal(encoded);
    expect(readFileSync(file, 'utf8')).to.equal(`${JSON.stringify(await s.read(), null, 2)}\n`);
  });

  it('a delayed warm-up starts only after its delay (a starting process finishes its start first)', async () => {
    const file = join(tempDir(), 'doc.json');
    const doc: Doc = { version: 1, items: {}, list: [] };
    for (let i = 0; i < 300; i++) doc.items[`k${i}`] = { id: `k${i}`, n: i, tags: [] };
    writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
    const s = new JsonStore<Doc>({ file, schema: Doc, what: 'test doc', empty: () => ({ version: 1, items: {}, list: [] }), largeMaps: { items: Rec }, warmAfterLoadMs: 200 });
    await s.read();
    await new Promise((r) => setTimeout(r, 100));
    expect(s.encodedRecords, 'within the delay').to.equal(0);
    await s.warmedUp();
    expect(s.encodedRecords).to.equal(300);
  });

  it('a change that lists keys copies nothing; objects it stores are not frozen under their holder; a kept draft is dead', async () => {
    const s = open(join(tempDir(), 'doc.json'));
    await s.update((d) => {
      for (let i = 0; i < 5; i++) d.items[`k${i}`] = { id: `k${i}`, n: i, tags: [] };
    });
    const before = await s.read();
    const mine = ['mine'];
    let kept: Doc['items'] | undefined;
    await s.update((d) => {
      expect(Object.keys(d.items)).to.have.length(5);
      for (const k in d.items) expect(k).to.match(/^k\d$/);
      d.items.k9 = { id: 'k9', n: 9, tags: mine };
      kept = d.items;
    });
    const after = await s.read();
    for (let i = 0; i < 5; i++) expect(after.items[`k${i}`], `k${i} was only listed`).to.equal(before.items[`k${i}`]);
    mine.push('still mine'); // the caller's array was not frozen by the store
    expect(after.items.k9!.tags).to.deep.equal(['mine']);
    expect(Object.isFrozen(after.items.k9)).to.equal(true);
    expect(() => kept!.k0, 'a draft kept past its change no longer works').to.throw(TypeError);
    expect((await s.read()).items.k0).to.equal(before.items.k0);
    const returned = await s.update((d) => d.items).catch((e: unknown) => e as Error);
    expect((returned as Error).message).to.contain('returned its draft of "items"');
  });

  it('a change that makes a record invalid is refused with its path, and nothing is written', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => void (d.items.a = { id: 'a', n: 1, tags: [] }));
    const text = readFileSync(file, 'utf8');
    const err = await s
      .update((d) => {
        (d.items.a as unknown as { n: string }).n = 'one';
      })
      .catch((e: unknown) => e as Error);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.contain('items.a.n');
    const added = await s.update((d) => void (d.items.b = { id: 'b' } as Rec)).catch((e: unknown) => e as Error);
    expect((added as Error).message).to.contain('items.b.n');
    expect(readFileSync(file, 'utf8')).to.equal(text);
    expect((await s.read()).items.a!.n).to.equal(1);
  });

  it('what an update stores is what a load of the file gives: defaults in, unknown members out, detached from the change', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    const mine = ['mine'];
    await s.update((d) => {
      d.items.a = { id: 'a', n: 1 } as Rec; // tags left to the schema's default
      d.items.b = { id: 'b', n: 2, tags: mine, extra: 'dropped' } as Rec;
    });
    const m = await s.read();
    expect(m).to.deep.equal(await open(file).read());
    expect(m.items.a!.tags).to.deep.equal([]);
    expect(m.items.b).to.not.have.property('extra');
    expect(m.items.b!.tags, 'not the change\'s array').to.not.equal(mine);
    mine.push('later');
    expect((await s.read()).items.b!.tags).to.deep.equal(['mine']);
    // And the next update, touching every record, then one, encodes only what it changed.
    await s.update((d) => {
      for (const r of Object.values(d.items)) r.n++;
    });
    const before = s.encodedRecords;
    await s.update((d) => void (d.items.a!.n = 10));
    expect(s.encodedRecords - before, 'records encoded by a one-record update').to.equal(1);
  });

  it('a record the change froze itself is still validated and copied (only what the store froze is trusted)', async () => {
    // Review finding: anything frozen was taken for a stored record, skipping validation and sharing
    // its unfrozen insides (Object.freeze is shallow).
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    const bad = await s.update((d) => void (d.items.b = Object.freeze({ id: 'b', n: 'two' }) as unknown as Rec)).catch((e: unknown) => e as Error);
    expect((bad as Error).message).to.contain('items.b.n');
    const tags = ['t1'];
    await s.update((d) => void (d.items.c = Object.freeze({ id: 'c', n: 1, tags })));
    tags.push('t2');
    expect((await s.read()).items.c!.tags).to.deep.equal(['t1']);
    expect(JSON.parse(readFileSync(file, 'utf8')).items.c.tags).to.deep.equal(['t1']);
  });

  it('odd keys: a draft gives no inherited member for a record, and "__proto__" is refused as a key', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => void (d.items.a = { id: 'a', n: 1, tags: [] }));
    const text = readFileSync(file, 'utf8');
    await s.update((d) => {
      expect(d.items['constructor'], 'no record named constructor').to.equal(undefined);
      expect(d.items['toString']).to.equal(undefined);
      expect('constructor' in d.items).to.equal(true); // (the map is still an object)
    });
    const err = await s.update((d) => void (d.items['__proto__'] = { id: 'x', n: 7, tags: [] })).catch((e: unknown) => e as Error);
    expect((err as Error).message).to.contain('reserved key');
    const m = await s.read();
    expect(Object.getPrototypeOf(m.items)).to.equal(Object.prototype);
    expect(Object.keys(m.items)).to.deep.equal(['a']);
    expect(readFileSync(file, 'utf8')).to.equal(text);
  });

  it('a change that throws or is async writes nothing, and a draft it kept is dead', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => void (d.items.a = { id: 'a', n: 1, tags: [] }));
    let kept: Doc['items'] | undefined;
    await s
      .update((d) => {
        kept = d.items;
        throw new Error('change failed');
      })
      .catch(() => {});
    expect(() => void (kept!.z = { id: 'z', n: 0, tags: [] }), 'a draft kept by a failed change').to.throw(TypeError);
    const asyncErr = await s
      .update(async (d) => {
        await Promise.resolve();
        d.items.a!.n = 2;
      })
      .catch((e: unknown) => e as Error);
    expect((asyncErr as Error).message).to.contain('must be synchronous');
    expect((await s.read()).items.a!.n).to.equal(1);
    expect(JSON.parse(readFileSync(file, 'utf8')).items.a.n).to.equal(1);
  });

  it('random sequences of changes (some failing) always leave memory and file equal to a plain model', async () => {
    const Op = fc.oneof(
      fc.record({ op: fc.constant('set' as const), key: fc.constantFrom('a', 'b', 'c', 'd'), n: fc.integer({ min: -5, max: 5 }) }),
      fc.record({ op: fc.constant('tag' as const), key: fc.constantFrom('a', 'b', 'c', 'd'), tag: fc.string({ maxLength: 4 }) }),
      fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom('a', 'b', 'c', 'd') }),
      fc.record({ op: fc.constant('replace' as const), keys: fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 3 }) }),
      fc.record({ op: fc.constant('bump-all' as const) }),
      fc.record({ op: fc.constant('throw' as const), key: fc.constantFrom('a', 'b') }),
      fc.record({ op: fc.constant('invalid' as const), key: fc.constantFrom('a', 'b') }),
    );
    type Op = typeof Op extends fc.Arbitrary<infer X> ? X : never;
    const apply = (d: Doc, o: Op): void => {
      switch (o.op) {
        case 'set':
          d.items[o.key] = { ...(d.items[o.key] ?? { id: o.key, tags: [] }), n: o.n };
          return;
        case 'tag':
          d.items[o.key]?.tags.push(o.tag);
          return;
        case 'delete':
          delete d.items[o.key];
          return;
        case 'replace':
          d.items = Object.fromEntries(o.keys.map((k) => [k, { id: k, n: 0, tags: [] }]));
          return;
        case 'bump-all':
          for (const r of Object.values(d.items)) r.n++;
          return;
        case 'throw':
          if (d.items[o.key]) d.items[o.key]!.n = 99;
          throw new Error('change failed');
        case 'invalid':
          d.items[o.key] = { id: o.key } as Rec;
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.array(Op, { maxLength: 12 }), async (ops) => {
        const file = join(tempDir(), 'doc.json');
        const s = open(file);
        let model: Doc = { version: 1, items: {}, list: [] };
        for (const o of ops) {
          const next = structuredClone(model);
          let ok = true;
          try {
            apply(next, o);
            Doc.parse(next);
          } catch {
            ok = false;
          }
          const r = await s.update((d) => apply(d, o)).then(
            () => true,
            () => false,
          );
          expect(r, JSON.stringify(o)).to.equal(ok);
          if (ok) model = next;
          expect(await s.read()).to.deep.equal(model);
          if (ok) expect(JSON.parse(readFileSync(file, 'utf8'))).to.deep.equal(model);
        }
      }),
      { numRuns: 60 },
    );
  });
});
