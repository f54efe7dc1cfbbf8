/** A separate process that hammers a JsonStore (for cross-process and kill -9 tests). */
import { z } from 'zod';
import { JsonStore } from '../../src/common/json-store.js';

const Doc = z.object({ version: z.literal(1), counter: z.number().int(), items: z.array(z.string()) });
const [file, mode, nStr] = process.argv.slice(2) as [string, string, string];
const s = new JsonStore<z.infer<typeof Doc>>({ file, schema: Doc, what: 'test doc', empty: () => ({ version: 1, counter: 0, items: [] }) });
const n = Number(nStr);
for (let i = 0; i < n; i++) {
  if (i === 1) process.stdout.write('ready\n'); // the first write is on disk
  await s.update((d) => {
    d.counter++;
    if (mode === 'churn') {
      // Invariant checked by the test: items.length === counter % 50, with bulky items.
      d.items = Array.from({ length: d.counter % 50 }, (_, k) => `item-${k}-${'z'.repeat(200)}`);
    }
  });
}
