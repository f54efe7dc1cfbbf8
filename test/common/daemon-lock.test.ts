import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processStart, takeDaemonLock } from '../../src/common/daemon-lock.js';
import type { UemlinkError } from '../../src/common/errors.js';
import { tempDir } from '../helpers/procs.js';

const LOCK_JS = fileURLToPath(new URL('../../src/common/daemon-lock.js', import.meta.url));

/** A child process that takes the lock, says so, and waits to be killed. */
function holder(dir: string): Promise<{ pid: number; kill(): Promise<void> }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `const { takeDaemonLock } = await import(${JSON.stringify(LOCK_JS)}); takeDaemonLock(${JSON.stringify(dir)}, 'connector', 'x'); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve({ pid: child.pid!, kill: () => new Promise((r) => (child.once('exit', () => r()), child.kill('SIGKILL'))) }));
    child.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
}

function refusal(dir: string): UemlinkError | undefined {
  try {
    takeDaemonLock(dir, 'connector', 'stop it first').release();
    return undefined;
  } catch (e) {
    return e as UemlinkError;
  }
}

describe('one daemon per state directory (daemon.lock)', function () {
  this.timeout(20_000);

  it('a second daemon is refused, naming the holder, while the first runs', async () => {
    const dir = tempDir();
    const h = await holder(dir);
    try {
      const e = refusal(dir);
      expect(e?.code).to.equal('ALREADY_RUNNING');
      expect(e?.message).to.contain(`another connector (pid ${h.pid} on `).and.contain('stop it first').and.contain(join(dir, 'daemon.lock'));
    } finally {
      await h.kill();
    }
  });

  it('a lock left by a killed daemon is taken over at once (a restart must not wait, nor fail)', async () => {
    const dir = tempDir();
    const h = await holder(dir);
    await h.kill();
    expect(existsSync(join(dir, 'daemon.lock'))).to.equal(true);
    const lock = takeDaemonLock(dir, 'connector', 'x');
    expect(JSON.parse(readFileSync(lock.file, 'utf8'))).to.include({ pid: process.pid });
    lock.release();
    expect(existsSync(lock.file)).to.equal(false);
  });

  it("another host's lock counts while it is fresh, and is taken over once untouched for 15 s", () => {
    const dir = tempDir();
    const file = join(dir, 'daemon.lock');
    writeFileSync(file, JSON.stringify({ pid: 1, start: '1', host: 'other-container' }));
    expect(refusal(dir)?.message).to.contain('(pid 1 on other-container)');
    const old = new Date(Date.now() - 16_000);
    utimesSync(file, old, old);
    expect(refusal(dir)).to.equal(undefined);
  });

  it('a half-written lock is judged by its age; release leaves a lock that is no longer ours', () => {
    const dir = tempDir();
    const file = join(dir, 'daemon.lock');
    writeFileSync(file, '{"pid":');
    expect(refusal(dir)?.code).to.equal('ALREADY_RUNNING');
    const old = new Date(Date.now() - 16_000);
    utimesSync(file, old, old);
    const lock = takeDaemonLock(dir, 'connector', 'x');
    writeFileSync(file, JSON.stringify({ pid: 1, start: '1', host: 'someone-else' }));
    lock.release();
    expect(existsSync(file), 'another holder’s lock is not removed').to.equal(true);
  });

  it('a directory that cannot be written gives a lock not held, with the reason, instead of stopping the daemon', () => {
    const lock = takeDaemonLock(join(tempDir(), 'missing', 'dir'), 'connector', 'x');
    expect(lock.unheld).to.be.a('string').and.not.equal('');
    lock.release();
  });

  it("reads this process's start time; a pid that does not run has none", () => {
    expect(processStart(process.pid)).to.match(/^\d+$/);
    expect(processStart(2 ** 22 + 1)).to.equal('');
  });
});
