/**
 * Attacker's review of the daemon lock (src/common/daemon-lock.ts): a daemon.lock that is not a
 * regular file. The lock is read with readFileSync, which follows a symlink and reads to EOF,
 * synchronously, before the daemon does anything else. Each test failed on the code as reviewed.
 * Each attempt runs in a child process with a time limit; children and dirs are removed.
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/procs.js';

const LOCK_JS = fileURLToPath(new URL('../../src/common/daemon-lock.js', import.meta.url));

/** takeDaemonLock(dir) in a child: 'held', the refusal's code, or 'hung' when it had not returned within `ms`. */
function attempt(dir: string, ms: number): Promise<string> {
  const child = spawn(
    process.execPath,
    ['--max-old-space-size=256', '--input-type=module', '-e', `const { takeDaemonLock } = await import(${JSON.stringify(LOCK_JS)}); let r = 'held'; try { takeDaemonLock(${JSON.stringify(dir)}, 'connector', 'x').release(); } catch (e) { r = e.code ?? String(e); } console.log(r);`],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += String(b)));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('hung');
    }, ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(out.trim() || `exited ${code ?? signal}`);
    });
  });
}

describe('security review: a daemon.lock that is not a regular file', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a FIFO named daemon.lock (left, or planted, in the state dir) does not hang the daemon at start', async () => {
    const dir = tempDir('rv-sec-lock-');
    dirs.push(dir);
    execFileSync('mkfifo', [join(dir, 'daemon.lock')]);
    // A starting daemon must either refuse (naming the file) or take the lock over; the read of a
    // FIFO with no writer blocks the whole event loop for ever: systemd's start timeout, restart,
    // block again.
    expect(await attempt(dir, 5000), 'takeDaemonLock did not return within 5 s').to.not.equal('hung');
  });

  it('daemon.lock as a symlink to /dev/zero does not make the start read without end', async () => {
    const dir = tempDir('rv-sec-lock-');
    dirs.push(dir);
    symlinkSync('/dev/zero', join(dir, 'daemon.lock'));
    // The lock is a few dozen bytes of JSON: reading more than that (here: until the heap is full,
    // or for ever) is never needed.
    expect(await attempt(dir, 8000), 'takeDaemonLock did not return within 8 s (or died of memory)').to.be.oneOf(['held', 'ALREADY_RUNNING']);
  });
});
