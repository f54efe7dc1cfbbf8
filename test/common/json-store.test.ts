import { expect } from 'chai';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { sweepOrphanTemps } from '../../src/common/fs-secure.js';
import { CloudServer } from '../../src/cloud/server.js';
import { silentLogger } from '../../src/common/log.js';
import { startInprocCloud } from '../helpers/inproc.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { JsonStore } from '../../src/common/json-store.js';
import { tempDir } from '../helpers/procs.js';

const Doc = z.object({ version: z.literal(1), counter: z.number().int(), items: z.array(z.string()) });
type Doc = z.infer<typeof Doc>;
const open = (file: string) => new JsonStore<Doc>({ file, schema: Doc, what: 'test doc', empty: () => ({ version: 1, counter: 0, items: [] }) });

const WORKER = fileURLToPath(new URL('../helpers/store-worker.js', import.meta.url));

function runWorker(args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [WORKER, ...args], { stdio: 'ignore' });
    p.on('exit', (code) => resolve(code));
  });
}

describe('json store', function () {
  this.timeout(60_000);

  it('starts empty without writing, then writes atomically with mode 0600', async () => {
    const dir = tempDir();
    const file = join(dir, 'sub', 'doc.json');
    const s = open(file);
    expect((await s.read()).counter).to.equal(0);
    expect(existsSync(file)).to.equal(false);
    await s.update((d) => {
      d.counter = 5;
    });
    expect(JSON.parse(readFileSync(file, 'utf8')).counter).to.equal(5);
    const { statSync } = await import('node:fs');
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    expect(statSync(join(dir, 'sub')).mode & 0o777).to.equal(0o700);
  });

  it('as root, files written into a service user\'s directory belong to that user', async function () {
    if (process.getuid?.() !== 0) return this.skip();
    const { chownSync, statSync, mkdirSync } = await import('node:fs');
    const dir = join(tempDir(), 'svc');
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 4242, 4243);
    const file = join(dir, 'state', 'doc.json');
    await open(file).update((d) => void (d.counter = 1));
    expect(statSync(file).uid).to.equal(4242);
    expect(statSync(file).gid).to.equal(4243);
    expect(statSync(join(dir, 'state')).uid).to.equal(4242);
  });

  it('a failing update writes nothing and leaves memory as on disk', async () => {
    const s = open(join(tempDir(), 'doc.json'));
    await s.update((d) => void (d.counter = 1));
    await s
      .update((d) => {
        d.counter = 99;
        throw new Error('boom');
      })
      .catch(() => {});
    expect((await s.read()).counter).to.equal(1);
  });

  it('two processes updating the same file never lose each other\'s changes', async () => {
    const file = join(tempDir(), 'doc.json');
    const codes = await Promise.all([runWorker([file, 'inc', '40']), runWorker([file, 'inc', '40']), runWorker([file, 'inc', '40'])]);
    expect(codes).to.deep.equal([0, 0, 0]);
    expect(JSON.parse(readFileSync(file, 'utf8')).counter).to.equal(120);
  });

  it('sees changes made by another process (reload on change)', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => void (d.counter = 1));
    expect(await runWorker([file, 'inc', '1'])).to.equal(0);
    expect((await s.read()).counter).to.equal(2);
  });

  it('a reload whose look at the file predates an update of ours never installs the older file over it', async () => {
    // Review finding: read() counted this process's commits only after its stat() returned. A stat
    // answered late (taken before another process's write, delivered after our update committed
    // while that update's write was still in flight) made read() load the older file over our
    // committed document, and the next update wrote from it: our change was lost. The timing is
    // forced here by delaying one stat() and our update's rename.
    const real = { stat: fsp.stat, rename: fsp.rename };
    let delayNextStat = 0;
    let slowRename = 0;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    (fsp as { stat: unknown }).stat = async (...a: Parameters<typeof fsp.stat>) => {
      const d = delayNextStat;
      delayNextStat = 0;
      const r = await real.stat(...a);
      if (d) await sleep(d);
      return r;
    };
    (fsp as { rename: unknown }).rename = async (...a: Parameters<typeof fsp.rename>) => {
      if (slowRename) await sleep(slowRename);
      return real.rename(...a);
    };
    syncBuiltinESMExports();
    try {
      const file = join(tempDir(), 'doc.json');
      const cloud = open(file);
      const cli = open(file); // stands in for another process
      await cloud.update((d) => void (d.counter = 1));
      await cloud.read();
      await sleep(150); // past the cloud's recheck interval
      await cli.update((d) => void d.items.push('cli-1'));
      delayNextStat = 80; // the cloud's next look sees cli-1's file, and answers late
      const look = cloud.read();
      await cli.update((d) => void d.items.push('cli-2'));
      slowRename = 150;
      await cloud.update((d) => void (d.counter = 2));
      slowRename = 0;
      await look;
      expect((await cloud.read()).counter, 'memory after the late look').to.equal(2);
      await cloud.update((d) => void d.items.push('cloud'));
      const disk = JSON.parse(readFileSync(file, 'utf8')) as Doc;
      expect(disk).to.deep.equal({ version: 1, counter: 2, items: ['cli-1', 'cli-2', 'cloud'] });
    } finally {
      Object.assign(fsp, real);
      syncBuiltinESMExports();
    }
  });

  it('kill -9 in the middle of writes never leaves a torn or invalid file', async () => {
    const file = join(tempDir(), 'doc.json');
    for (let i = 0; i < 15; i++) {
      const p = spawn(process.execPath, [WORKER, file, 'churn', '100000'], { stdio: ['ignore', 'pipe', 'ignore'] });
      // Kill at a random moment once writes are under way.
      const ready = await Promise.race([new Promise<boolean>((r) => p.stdout!.once('data', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000))]);
      expect(ready, 'the writer got going (a stale lock from the previous kill was taken over)').to.equal(true);
      await new Promise((r) => setTimeout(r, Math.random() * 60));
      p.kill('SIGKILL');
      await new Promise((r) => p.on('exit', r));
      // A lock left by the killed writer is taken over after 5 s (tested below); skip the wait here.
      rmSync(`${file}.lock`, { recursive: true, force: true });
      if (!existsSync(file)) continue;
      const doc = Doc.parse(JSON.parse(readFileSync(file, 'utf8')));
      expect(doc.items.length).to.equal(doc.counter % 50);
    }
    expect(existsSync(file), 'some write completed').to.equal(true);
    // Leftover temp files from killed writers do not confuse a reader.
    expect((await open(file).read()).version).to.equal(1);
  });

  it('a lock left by a writer killed mid-update is taken over, not waited on for ever', async () => {
    const file = join(tempDir(), 'doc.json');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(`${file}.lock`); // what a kill -9 during update() leaves behind
    const t0 = Date.now();
    await open(file).update((d) => void (d.counter = 1));
    expect(Date.now() - t0).to.be.below(12_000);
    expect(JSON.parse(readFileSync(file, 'utf8')).counter).to.equal(1);
  });

  it('a corrupt file is reported with its path and left as it is', async () => {
    const file = join(tempDir(), 'doc.json');
    writeFileSync(file, '{"version": 1, "coun');
    const err = await open(file).read().catch((e: unknown) => e as Error & { code: string });
    expect(err).to.have.property('code', 'STATE_CORRUPT');
    expect((err as Error).message).to.contain(file);
    expect(readFileSync(file, 'utf8')).to.equal('{"version": 1, "coun');
    const upd = await open(file)
      .update((d) => void (d.counter = 1))
      .catch((e: unknown) => e as Error & { code: string });
    expect(upd).to.have.property('code', 'STATE_CORRUPT');
    expect(readFileSync(file, 'utf8')).to.equal('{"version": 1, "coun');
  });

  it('a file that is valid JSON of the wrong shape names the bad key', async () => {
    const file = join(tempDir(), 'doc.json');
    writeFileSync(file, JSON.stringify({ version: 1, counter: 'x', items: [] }));
    const err = await open(file).read().catch((e: unknown) => e as Error & { code: string });
    expect(err).to.have.property('code', 'STATE_INVALID');
    expect((err as Error).message).to.contain('counter');
  });

  it('a failed write (read-only directory) keeps the previous version and says why', async function () {
    if (process.getuid?.() === 0) {
      // root ignores directory permissions; use a full disk instead when available.
      const { execSync } = await import('node:child_process');
      let mnt: string | undefined;
      try {
        mnt = tempDir('uemlink-tmpfs-');
        execSync(`mount -t tmpfs -o size=64k tmpfs ${mnt}`, { stdio: 'ignore' });
      } catch {
        return this.skip();
      }
      try {
        const file = join(mnt, 'doc.json');
        const s = open(file);
        await s.update((d) => void (d.counter = 7));
        const err = await s
          .update((d) => {
            d.counter = 8;
            d.items = ['y'.repeat(200_000)]; // larger than the 64 KiB filesystem
          })
          .catch((e: unknown) => e as Error & { code: string });
        expect(err).to.have.property('code', 'STATE_WRITE_FAILED');
        expect((err as Error).message).to.contain('disk full').and.contain('previous version was kept');
        expect(JSON.parse(readFileSync(file, 'utf8')).counter).to.equal(7);
        expect(readdirSync(mnt).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
        expect((await s.read()).counter, 'memory is as on disk, not the change that failed to land').to.equal(7);
      } finally {
        execSync(`umount ${mnt}`);
      }
      return;
    }
    const dir = tempDir();
    const file = join(dir, 'doc.json');
    const s = open(file);
    await s.update((d) => void (d.counter = 7));
    chmodSync(dir, 0o500);
    try {
      const err = await s.update((d) => void (d.counter = 8)).catch((e: unknown) => e as Error & { code: string });
      expect(err).to.have.property('code');
      expect(JSON.parse(readFileSync(file, 'utf8')).counter).to.equal(7);
    } finally {
      chmodSync(dir, 0o700);
    }
  });
});

/** The next `n` stat() calls of `file` fail with `code` (EACCES: a directory's mode changed; EIO; ...). */
function failStat(file: string, n: number, code: string): () => void {
  const real = fsp.stat;
  let left = n;
  (fsp as { stat: unknown }).stat = async (p: Parameters<typeof fsp.stat>[0], ...rest: unknown[]) => {
    if (p === file && left > 0) {
      left--;
      throw Object.assign(new Error(`${code}: stat '${file}'`), { code });
    }
    return (real as (...a: unknown[]) => unknown)(p, ...rest);
  };
  syncBuiltinESMExports();
  return () => {
    (fsp as { stat: unknown }).stat = real;
    syncBuiltinESMExports();
  };
}

describe('json store: a stat() that fails for another reason than a missing file (found in review)', function () {
  this.timeout(20_000);

  it('update() never replaces the document with an empty one because one stat() failed', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => {
      d.counter = 41;
      d.items = ['connector-a', 'connector-b', 'connector-c'];
    });
    const restore = failStat(file, 1, 'EIO');
    try {
      const err = await s.update((d) => void d.counter++).then(() => undefined, (e: Error & { code?: string }) => e);
      expect(err?.code).to.equal('STATE_UNREADABLE');
    } finally {
      restore();
    }
    const disk = JSON.parse(readFileSync(file, 'utf8')) as Doc;
    expect(disk.counter, 'the failed update wrote nothing').to.equal(41);
    expect(disk.items).to.deep.equal(['connector-a', 'connector-b', 'connector-c']);
  });

  it('read() does not answer "empty document" because one stat() failed', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => void (d.items = ['connector-a']));
    await new Promise((r) => setTimeout(r, 150)); // past RECHECK_MS
    const restore = failStat(file, 1, 'EACCES');
    let items: string[] | Error;
    try {
      items = await s.read().then((d) => d.items, (e: Error) => e);
    } finally {
      restore();
    }
    expect(items).to.be.instanceOf(Error);
    expect((items as Error & { code?: string }).code).to.equal('STATE_UNREADABLE');
    expect(await s.read().then((d) => d.items)).to.deep.equal(['connector-a']);
  });
});

describe('json store: a lock taken over from a stalled holder (found in review)', function () {
  this.timeout(60_000);
  it("the stalled holder's update is refused (STATE_LOCKED), not written over the other process's", async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => void (d.counter = 100));
    let exited!: Promise<number | null>;
    const err = await s
      .update((d) => {
        // Under the lock, another process (the CLI) wants to add one...
        const p = spawn(process.execPath, [WORKER, file, 'plain', '1'], { stdio: 'ignore' });
        exited = new Promise((r) => p.on('exit', (c) => r(c)));
        // ...while this one stalls (GC, swap, a VM pause) past the lock's 5 s stale period.
        const until = Date.now() + 7000;
        while (Date.now() < until) {
          /* stalled */
        }
        d.counter += 1000;
      })
      .then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
    expect(await exited).to.equal(0);
    expect(err?.code).to.equal('STATE_LOCKED');
    expect((JSON.parse(readFileSync(file, 'utf8')) as Doc).counter, "the other process's update is kept").to.equal(101);
    await s.update((d) => void (d.counter += 1000)); // a retry builds on it
    expect((JSON.parse(readFileSync(file, 'utf8')) as Doc).counter).to.equal(1101);
  });
});

describe('json store: a lock left with an mtime in the future', function () {
  this.timeout(30_000);
  it('is taken over once nobody refreshes it (a dead holder, then the clock set back)', async () => {
    const file = join(tempDir(), 'doc.json');
    const s = open(file);
    await s.update((d) => void (d.counter = 1));
    mkdirSync(`${file}.lock`);
    const ahead = new Date(Date.now() + 3600_000);
    utimesSync(`${file}.lock`, ahead, ahead);
    const err = await s.update((d) => void (d.counter += 1)).then(
      () => undefined,
      (e: Error & { code?: string }) => e.code,
    );
    expect({ err, counter: (JSON.parse(readFileSync(file, 'utf8')) as Doc).counter }).to.deep.equal({ err: undefined, counter: 2 });
    expect(existsSync(`${file}.lock`), 'released after the update').to.equal(false);
  });
});

describe('temp files of writes that never finished', () => {
  it('are removed once old enough; live writes, other dotfiles and directories are left', async () => {
    const dir = tempDir('uemlink-sweep-');
    const old = (Date.now() - 3600_000) / 1000;
    const orphan = join(dir, '.state.json.4242.0a1b2c3d.tmp');
    const keyOrphan = join(dir, '.c-1.key.1.deadbeef.tmp');
    const fresh = join(dir, '.state.json.4243.0a1b2c3e.tmp'); // a write in progress
    const other = join(dir, '.keep.tmp');
    const subdir = join(dir, '.x.1.00000000.tmp');
    for (const f of [orphan, keyOrphan, fresh, other]) writeFileSync(f, 'x');
    mkdirSync(subdir);
    for (const f of [orphan, keyOrphan, other, subdir]) utimesSync(f, old, old);
    const removed = await sweepOrphanTemps(dir);
    expect({ removed, left: readdirSync(dir).sort() }).to.deep.equal({ removed: 2, left: ['.keep.tmp', '.state.json.4243.0a1b2c3e.tmp', '.x.1.00000000.tmp'] });
    expect(await sweepOrphanTemps(join(dir, 'missing'))).to.equal(0);
  });

  it('are removed when the cloud starts', async () => {
    const cloud = await startInprocCloud();
    const dataDir = cloud.config.dataDir;
    await cloud.shutdown();
    const orphan = join(dataDir, '.state.json.999999.0a1b2c3d.tmp');
    writeFileSync(orphan, '{"half": ');
    utimesSync(orphan, (Date.now() - 3600_000) / 1000, (Date.now() - 3600_000) / 1000);
    const again = await CloudServer.start(cloud.config, { logger: silentLogger() });
    try {
      expect(existsSync(orphan)).to.equal(false);
    } finally {
      await again.shutdown();
    }
  });
});
