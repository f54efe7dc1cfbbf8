/**
 * The cloud's TLS session ticket key: made once and kept (0600) so tickets outlive a restart,
 * replaced when due (7 days) at start or while running, and a bad file replaced rather than fatal.
 */
import { expect } from 'chai';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../../src/common/clock.js';
import { silentLogger } from '../../src/common/log.js';
import { TICKET_KEY_FILE, TICKET_LIFETIME_MS, TicketKeys } from '../../src/cloud/tls-tickets.js';
import { tempDir, until } from '../helpers/procs.js';

/** A clock moved by hand; interval callbacks run when `tick` is called. */
class HandClock implements Clock {
  t = Date.parse('2026-11-01T00:00:00Z');
  private intervals = new Map<number, () => void>();
  private next = 1;
  now(): number {
    return this.t;
  }
  setTimeout(): TimerHandle {
    throw new Error('not used');
  }
  clearTimeout(): void {}
  setInterval(fn: () => void): TimerHandle {
    this.intervals.set(this.next, fn);
    return this.next++;
  }
  clearInterval(h: TimerHandle): void {
    this.intervals.delete(h as number);
  }
  get armed(): number {
    return this.intervals.size;
  }
  tick(): void {
    for (const fn of this.intervals.values()) fn();
  }
}

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB…the cloud certificate\n-----END CERTIFICATE-----\n';

const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

describe('cloud: TLS session ticket key', () => {
  const logger = silentLogger();

  it('is made once, 0600, and the same key is loaded again after a restart', async () => {
    const dir = tempDir();
    const clock = new HandClock();
    const a = await TicketKeys.load(dir, CERT, clock, logger);
    expect(a.key).to.have.length(48);
    expect(statSync(join(dir, TICKET_KEY_FILE)).mode & 0o777).to.equal(0o600);
    clock.t += TICKET_LIFETIME_MS - 60_000;
    const b = await TicketKeys.load(dir, CERT, clock, logger);
    expect(b.key.equals(a.key)).to.equal(true);
    expect(TicketKeys.lifetimeSeconds).to.equal(7 * 86_400);
  });

  it('is replaced at start once 7 days old, and a torn or foreign file is replaced too', async () => {
    const dir = tempDir();
    const clock = new HandClock();
    const a = await TicketKeys.load(dir, CERT, clock, logger);
    clock.t += TICKET_LIFETIME_MS;
    const b = await TicketKeys.load(dir, CERT, clock, logger);
    expect(b.key.equals(a.key)).to.equal(false);
    const stored = JSON.parse(readFileSync(join(dir, TICKET_KEY_FILE), 'utf8')) as { createdAt: string; key: string };
    expect(stored.createdAt).to.equal(new Date(clock.t).toISOString());
    expect(Buffer.from(stored.key, 'base64').equals(b.key)).to.equal(true);
    for (const bad of ['', '{"key":"AAAA","createdAt":"2026-11-01T00:00:00Z"}', 'not json']) {
      writeFileSync(join(dir, TICKET_KEY_FILE), bad, { mode: 0o600 });
      const c = await TicketKeys.load(dir, CERT, clock, logger);
      expect(c.key, bad).to.have.length(48);
      expect(readFileSync(join(dir, TICKET_KEY_FILE), 'utf8')).to.contain(c.key.toString('base64'));
    }
  });

  it('is replaced when the TLS certificate changes: no session outlives its certificate', async () => {
    const dir = tempDir();
    const clock = new HandClock();
    const a = await TicketKeys.load(dir, CERT, clock, logger);
    expect((await TicketKeys.load(dir, CERT, clock, logger)).key.equals(a.key)).to.equal(true);
    const b = await TicketKeys.load(dir, `${CERT}renewed`, clock, logger);
    expect(b.key.equals(a.key)).to.equal(false);
    expect((await TicketKeys.load(dir, `${CERT}renewed`, clock, logger)).key.equals(b.key)).to.equal(true);
  });


  it('is replaced when group or others could read it (it may be known to them), and the new one is 0600', async () => {
    const dir = tempDir();
    const clock = new HandClock();
    const file = join(dir, TICKET_KEY_FILE);
    const a = await TicketKeys.load(dir, CERT, clock, logger);
    chmodSync(file, 0o640);
    const b = await TicketKeys.load(dir, CERT, clock, logger);
    expect(b.key.equals(a.key)).to.equal(false);
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    expect((await TicketKeys.load(dir, CERT, clock, logger)).key.equals(b.key)).to.equal(true);
  });
  it('a key that cannot be stored is kept in memory: the cloud still starts', async () => {
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, 'x');
    const k = await TicketKeys.load(join(file, 'data'), CERT, new HandClock(), logger);
    expect(k.key).to.have.length(48);
  });

  it('while running, hands the server a new key once the current one is due, and stops on stop()', async () => {
    const dir = tempDir();
    const clock = new HandClock();
    const k = await TicketKeys.load(dir, CERT, clock, logger);
    const first = k.key;
    const applied: Buffer[] = [];
    k.rotate((key) => applied.push(key));
    clock.t += TICKET_LIFETIME_MS - 3_600_000;
    clock.tick();
    await settle();
    expect(applied).to.have.length(0);
    clock.t += 3_600_000;
    clock.tick();
    await until(() => applied.length > 0, 5000, 'the new key');
    await settle();
    expect(applied).to.have.length(1);
    expect(applied[0]!.equals(first)).to.equal(false);
    expect(applied[0]!.equals(k.key)).to.equal(true);
    // What a restart would load now is the key the server was given.
    const reloaded = await TicketKeys.load(dir, CERT, clock, logger);
    expect(reloaded.key.equals(applied[0]!)).to.equal(true);
    k.stop();
    expect(clock.armed).to.equal(0);
  });
});
