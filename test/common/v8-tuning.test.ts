/**
 * tuneV8: with it, V8 no longer moves the objects of a place in the code that kept surviving
 * straight into the old generation (allocation-site pretenuring). Measured in a fresh Node process:
 * old-space growth while allocating objects whose allocation site V8 would otherwise have tenured.
 *
 * NODE_FLAGS: the floor under which V8 skips mark-compacts, measured the same way (a fresh process
 * making old-generation garbage); every launcher passes them; a daemon started without says so.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS, missingNodeFlags } from '../../src/common/v8-tuning.js';
import { startCloud, until } from '../helpers/procs.js';

const tuning = fileURLToPath(new URL('../../src/common/v8-tuning.js', import.meta.url));
const cliMain = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** Mark-compacts V8 ran while old-generation garbage was made (objects kept over a few scavenges, then dropped; --trace-gc shows the heap reaching 64 MiB without the floor). */
function markCompacts(flags: readonly string[]): number {
  const script = `
    let hold = [];
    for (let r = 0; r < 40; r++) {
      const batch = [];
      for (let i = 0; i < 20000; i++) batch.push({ a: i, b: 'x' + i, c: [i] });
      hold.push(batch);
      if (hold.length > 3) hold.shift();
      for (let j = 0; j < 200000; j++) ({ t: j }); // young garbage: the scavenges promote what is held
    }
  `;
  // A fixed heap maximum (the cloud unit's): V8 otherwise sizes its limits from the machine's memory.
  const out = execFileSync(process.execPath, ['--trace-gc', '--max-old-space-size=1024', ...flags, '-e', script], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes('Mark-Compact')).length;
}

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

  it('NODE_FLAGS: V8 skips mark-compacts while the old generation stays under the floor (and runs them without)', () => {
    expect(markCompacts([]), 'mark-compacts without the flags').to.be.at.least(1);
    expect(markCompacts(NODE_FLAGS)).to.equal(0);
  });

  it('every launcher passes NODE_FLAGS before the program: the install wrapper, the image, npm run demo and the bin file\'s first line', () => {
    const install = readFileSync(join(ROOT, 'scripts/install.sh'), 'utf8');
    expect(/^node_flags='([^']*)'$/m.exec(install)?.[1], 'node_flags in install.sh (the wrapper and its smoke test)').to.equal(NODE_FLAGS.join(' '));
    expect(install).to.include(`printf 'exec %s %s %s "$@"\\n' "$(sh_quote "$node")" "$node_flags"`);
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    expect(JSON.parse(entry![1]!)).to.deep.equal(['node', ...NODE_FLAGS, '/opt/uemlink/dist/src/cli/main.js']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
    expect(pkg.scripts['demo']).to.equal(`node ${NODE_FLAGS.join(' ')} dist/src/cli/main.js demo`);
    // npx, a global install and running the file itself: package.json's bin is started by its first line.
    const pkgBin = pkg.bin['uemlink'];
    expect(pkgBin).to.equal('dist/src/cli/main.js');
    expect(readFileSync(join(ROOT, pkgBin!), 'utf8').split('\n')[0]).to.equal(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    expect(missingNodeFlags(['--inspect'])).to.deep.equal([...NODE_FLAGS]);
    expect(missingNodeFlags([...NODE_FLAGS, '--inspect'])).to.deep.equal([]);
    // Another value or spelling of the same flag is the admin's choice, not a missing flag.
    expect(missingNodeFlags(['--initial_old_space_size=256'])).to.deep.equal([]);
    expect(missingNodeFlags(['--initial-old-space-size', '64'])).to.deep.equal([]);
  });

  it('a daemon started without NODE_FLAGS logs which it lacks; started with them (as the test helpers do), it does not', async () => {
    const line = /without the node flags uemlink runs with/;
    const withFlags = await startCloud();
    // The same command with the flags dropped from node's command line, as a plain `node main.js` would.
    const without = await startCloud({ wrap: ['sh', '-c', `n="$0"; shift ${NODE_FLAGS.length}; exec "$n" "$@"`] });
    // main.js executed itself, as npx and a global install do: the kernel starts node by its first line.
    const direct = await startCloud({ wrap: ['sh', '-c', `shift ${NODE_FLAGS.length}; exec "$@"`] });
    try {
      await until(async () => without.proc.logs.some((l) => line.test(l.message)), 10_000, 'the missing-flags line');
      const logged = without.proc.logs.find((l) => line.test(l.message)) as { missing?: string } | undefined;
      expect(logged?.missing).to.equal(NODE_FLAGS.join(' '));
      expect(withFlags.proc.logs.filter((l) => line.test(l.message))).to.deep.equal([]);
      // node's own command line is the proof (a log line could still be in the pipe when /healthz answered).
      expect(readFileSync(`/proc/${direct.proc.pid}/cmdline`, 'utf8').split('\0')).to.include.members([...NODE_FLAGS, cliMain]);
      expect(direct.proc.logs.filter((l) => line.test(l.message))).to.deep.equal([]);
    } finally {
      await Promise.all([withFlags.proc.stop(), without.proc.stop(), direct.proc.stop()]);
    }
  });
});
