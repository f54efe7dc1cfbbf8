/** A raw TCP client for HTTP tests: everything it receives, as bytes, and whether the server closed. */
import { connect, type Socket } from 'node:net';
import { until } from './procs.js';

export class Raw {
  buf = Buffer.alloc(0);
  closed = false;
  errored: Error | undefined;
  constructor(readonly s: Socket) {
    s.on('data', (d: Buffer) => (this.buf = Buffer.concat([this.buf, d])));
    s.on('close', () => (this.closed = true));
    s.on('error', (e) => (this.errored = e));
  }
  static open(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }
  get text(): string {
    return this.buf.toString('latin1');
  }
  send(s: string | Buffer): void {
    this.s.write(s);
  }
  async waitFor(pred: (t: string) => boolean, ms: number, what: string): Promise<string> {
    await until(() => pred(this.text) || this.closed, ms, what);
    return this.text;
  }
  close(): void {
    this.s.destroy();
  }
}
