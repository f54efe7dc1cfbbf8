/**
 * Hostile input against the frame decoder and the session state machine: a CI-sized run of the
 * properties in protocol-properties.ts (the long run is `node dist/bench/fuzz.js`, >= 1,000,000
 * cases). Existing example-based checks stay in test/protocol/{frame,session}.test.ts.
 */
import fc from 'fast-check';
import { PROPERTIES } from './protocol-properties.js';

/** Cases per property in CI (the whole file runs in a few seconds). */
const CI_RUNS: Record<string, number> = {};
const DEFAULT_RUNS = 400;

describe('hostile input: tunnel protocol (property-based)', function () {
  this.timeout(60_000);
  for (const p of PROPERTIES) {
    it(p.name, async () => {
      const runs = CI_RUNS[p.name] ?? (p.weight < 1 ? 10 : DEFAULT_RUNS);
      // A fixed seed per CI run is not used on purpose: each run explores new cases; a failure
      // prints the seed and path to replay (also with `node dist/bench/fuzz.js --seed N`).
      fc.assert(p.property, { numRuns: runs });
      // Streams destroyed during the cases emit 'error'/'close' on the next tick: let them run here.
      await new Promise((r) => setImmediate(r));
    });
  }
});
