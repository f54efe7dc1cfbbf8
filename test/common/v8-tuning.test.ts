/**
 * tuneV8: with it, V8 no longer moves the objects of a place in the code that kept surviving
 * straight into the old generation (allocation-site pretenuring). Measured in a fresh Node process:
 * old-space growth while allocating objects whose allocation site V8 would otherwise have tenured.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const tuning = fileURLToPath(new URL('../../src/common/v8-tuning.js', import.meta.url));
const cliMain = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Bytes the old generation grew while 2,000 objects were made at a site V8 had reason to tenure. */
function oldGrowth(tune: boolean): number {
  const script = `
    import v8 from 'node:v8';
    ${tune ? `(await import(${JSON.stringify(tuning)})).tuneV8();` : ''}
    const oldUsed = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
    function make(i) { return { a: i, b: [i, i] }; }
    const keep = [];
    // Two million objects from one site that all survive: the site V8 pretenures.
    for (let i = 0; i < 2_000_000; i++) keep.push(make(i));
    const growth = [];
    for (let t = 0; t < 7; t++) {
      const before = oldUsed();
      const tmp = [];
      for (let i = 0; i < 2000; i++) tmp.push(make(i));
      growth.push(oldUsed() - before);
    }
    growth.sort((a, b) => a - b);
    console.log(growth[3]); // the median: a collection during one of the 7 would skew it
  `;
  // A young generation at its full size from the start: V8 only makes pretenuring decisions in
  // collections of a full-size young generation, which otherwise depends on how it has grown.
  const young = ['--min-semi-space-size=16', '--max-semi-space-size=16'];
  return Number(execFileSync(process.execPath, [...young, '--input-type=module', '-e', script], { encoding: 'utf8' }).trim());
}

describe('V8 tuning of the daemons', function () {
  this.timeout(30_000);

  it('without it V8 pretenures a site whose objects survive; with it, new objects start young', () => {
    expect(oldGrowth(false), 'objects allocated straight into the old generation without tuneV8').to.be.above(100_000);
    expect(oldGrowth(true)).to.equal(0);
  });

  it('the uemlink command applies it before any other module is evaluated (its first import)', () => {
    const firstImport = /^import\s+(?:[^'"]*from\s+)?['"]([^'"]+)['"]/m.exec(readFileSync(cliMain, 'utf8'));
    expect(firstImport?.[1]).to.equal('./v8-flags.js');
    const flags = readFileSync(cliMain.replace(/main\.js$/, 'v8-flags.js'), 'utf8');
    expect(flags).to.match(/tuneV8\(\)/);
  });
});
