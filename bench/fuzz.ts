/**
 * Long fuzz run of the tunnel protocol's hostile-input properties (the same ones the CI test
 * test/hostile/protocol-fuzz.test.ts runs a few hundred times): random and mutated frames, frames for
 * streams the peer does not own, window overflow, zero-length and maximal frames, out-of-order
 * END/RESET, reply floods. Prints the case count, the seed, failures and the time taken; exits 1 on
 * any failure.
 *
 *   node dist/bench/fuzz.js [--cases 1000000] [--seed N] [--only "<property name substring>"]
 *
 * Cases are run in batches of BATCH per property; batch i of a run with seed S uses seed S + i. A
 * failure prints the command that replays exactly that batch.
 */
import fc from 'fast-check';
import { PROPERTIES } from '../test/hostile/protocol-properties.js';

const BATCH = 1000;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const total = Number(arg('--cases') ?? 1_000_000);
const seed = arg('--seed') !== undefined ? Number(arg('--seed')) >>> 0 : (Math.random() * 0x100000000) >>> 0;
const only = arg('--only');
if (!Number.isInteger(total) || total < 1) {
  console.error('--cases must be a positive whole number');
  process.exit(2);
}

const selected = PROPERTIES.filter((p) => !only || p.name.includes(only));
if (selected.length === 0) {
  console.error(`no property matches "${only}"`);
  process.exit(2);
}
const weights = selected.reduce((a, p) => a + p.weight, 0);

interface Failure {
  property: string;
  batchSeed: number;
  report: string;
}
const failures: Failure[] = [];
let current = { property: '', batchSeed: 0 };

// A crash outside a property's own call stack (an 'error' event without a listener, a throw in a
// callback) is a failure too.
process.on('uncaughtException', (e) => {
  failures.push({ property: current.property, batchSeed: current.batchSeed, report: `uncaught: ${e.stack ?? String(e)}` });
  finish();
});

const t0 = Date.now();
let ran = 0;
let lastProgress = t0;

function finish(): never {
  const secs = (Date.now() - t0) / 1000;
  console.log('');
  console.log(`cases: ${ran.toLocaleString('en-US')}  seed: ${seed}  failures: ${failures.length}  time: ${secs.toFixed(1)} s  (${Math.round(ran / secs).toLocaleString('en-US')} cases/s)`);
  for (const f of failures) {
    console.log(`\nFAILED: ${f.property}`);
    console.log(`  replay: node dist/bench/fuzz.js --only ${JSON.stringify(f.property)} --cases ${BATCH} --seed ${f.batchSeed}`);
    console.log(f.report.split('\n').map((l) => `  ${l}`).join('\n'));
  }
  process.exit(failures.length > 0 ? 1 : 0);
}

console.log(`fuzzing ${selected.length} properties, ${total.toLocaleString('en-US')} cases, seed ${seed}`);
for (const p of selected) {
  const cases = Math.max(1, Math.ceil((total * p.weight) / weights));
  const start = Date.now();
  let done = 0;
  for (let b = 0; done < cases; b++) {
    const n = Math.min(BATCH, cases - done);
    const batchSeed = (seed + b) >>> 0;
    current = { property: p.name, batchSeed };
    const r = fc.check(p.property, { numRuns: n, seed: batchSeed });
    done += r.numRuns;
    ran += r.numRuns;
    if (r.failed) {
      failures.push({ property: p.name, batchSeed, report: fc.defaultReportMessage(r) ?? 'failed' });
      break;
    }
    // Let destroyed streams emit their events (and the session's batched flushes run) between batches.
    await new Promise((res) => setImmediate(res));
    if (Date.now() - lastProgress > 10_000) {
      lastProgress = Date.now();
      console.log(`  … ${ran.toLocaleString('en-US')} cases, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  console.log(`${failures.some((f) => f.property === p.name) ? 'FAIL' : 'ok  '} ${p.name}: ${done.toLocaleString('en-US')} cases in ${((Date.now() - start) / 1000).toFixed(1)} s`);
}
finish();
