/**
 * One request to a UEM as an undici dispatch handler, its response body handed to a sink.
 *
 * Every request to a UEM goes this way: the relay's (Target.exchange), and those of health checks,
 * diagnose and the cloud's direct route to a UEM (Target.send, the body as a Readable:
 * readableBody below). `pool.request()` answers with a Node Readable that
 * the relay then piped into the tunnel stream; per small relayed call, that Readable, undici's
 * AsyncResource and its two header objects, and the promise and listener plumbing around them were
 * ~6 % of the connector's CPU (docs/performance.md). Here undici's callbacks go straight to the
 * sink, with undici's own pause/resume as backpressure.
 *
 * It uses undici's handler interface of onConnect/onHeaders/onData/onComplete/onError: the one its
 * client calls internally (the newer onRequestStart/onResponse* interface is adapted onto it, with
 * a header object built per response).
 */
import { Readable } from 'node:stream';

/** Where the body goes. */
export interface BodySink {
  /** A chunk of the body; false to pause until Exchange.resume(). */
  data(chunk: Buffer): boolean;
  /** The body is complete. */
  end(): void;
  /** The body stopped before its end: the UEM reset or stalled, or the exchange was aborted. */
  error(err: Error): void;
}

/**
 * Body bytes held before the sink is attached (the head has been delivered, the caller has not yet
 * decided where the body goes). A small answer arrives whole with its head; a large one waits.
 */
const EARLY_LIMIT = 64 * 1024;

const discardSink: BodySink = { data: () => true, end() {}, error() {} };

export class Exchange {
  statusCode = 0;
  /** Header names and values alternating, as the UEM sent them. */
  rawHeaders: string[] = [];
  /** waiting: no head yet; body: head delivered, body may still come; done: body over (or failed). */
  private state: 'waiting' | 'body' | 'done' = 'waiting';
  private abortUndici: ((err: Error) => void) | undefined;
  private abortReason: Error | undefined;
  private resumeUndici: (() => void) | undefined;
  private paused = false;
  private resumeQueued = false;
  private sink: BodySink | undefined;
  private early: Buffer[] = [];
  private earlyBytes = 0;
  /** How the body ended while no sink was attached yet. */
  private outcome: { err: Error | null } | undefined;

  /**
   * @param settle called once: with null when the head has arrived, or with the error that ended
   *   the exchange before it did.
   * @param done called once the exchange is over, whichever way (to drop timers and listeners).
   * @param released called once undici is done with the request (its onComplete or onError): an
   *   exchange aborted while queued is over for the caller at once, but holds its place in undici's
   *   queue until a connection frees up.
   */
  constructor(
    private readonly settle: (err: Error | null) => void,
    private readonly done: () => void,
    private released?: () => void,
  ) {}

  // ---- undici's side ----

  /** undici has given the request a connection to the UEM (it was neither queued nor connecting). */
  get sent(): boolean {
    return this.gotConnection;
  }
  private gotConnection = false;

  onConnect(abort: (err: Error) => void): void {
    this.gotConnection = true;
    if (this.abortReason) abort(this.abortReason);
    else this.abortUndici = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx interim answers: the final one follows
    const raw: string[] = new Array(rawHeaders.length);
    for (let i = 0; i < rawHeaders.length; i++) raw[i] = rawHeaders[i]!.toString('latin1');
    this.statusCode = statusCode;
    this.rawHeaders = raw;
    this.resumeUndici = resume;
    this.state = 'body';
    this.settle(null);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.sink) {
      if (this.sink.data(chunk)) return true;
      this.paused = true;
      return false;
    }
    this.early.push(chunk);
    this.earlyBytes += chunk.length;
    if (this.earlyBytes < EARLY_LIMIT) return true;
    this.paused = true;
    return false;
  }

  onComplete(): void {
    this.release();
    this.finish(null);
  }

  onError(err: Error): void {
    this.release();
    this.fail(err);
  }

  private release(): void {
    const r = this.released;
    this.released = undefined;
    r?.();
  }

  private fail(err: Error): void {
    if (this.state === 'waiting') {
      this.state = 'done';
      this.done();
      this.settle(err);
      return;
    }
    this.finish(err);
  }

  private finish(err: Error | null): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.done();
    if (!this.sink) this.outcome = { err };
    else if (err) this.sink.error(err);
    else this.sink.end();
  }

  // ---- the caller's side ----

  /** Sends the body (what came already, then the rest) to `sink`. Call once. */
  pipe(sink: BodySink): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    this.earlyBytes = 0;
    let room = true;
    for (const c of early) room = sink.data(c);
    if (this.outcome) {
      const { err } = this.outcome;
      if (err) sink.error(err);
      else sink.end();
    } else if (room) this.resume(); // paused for the early limit: the sink has room now
    else this.paused = true;
  }

  /**
   * Continues a body paused because the sink said so. Deferred to a microtask: undici's HTTP/1
   * parser state is shared by all connections and its resume asserts that no other connection is
   * mid-parse, yet a sink's 'drain' can fire inside another exchange's onData (the session frames
   * other streams' data synchronously). By the microtask that parse is over.
   */
  resume(): void {
    if (!this.paused || this.resumeQueued) return;
    this.resumeQueued = true;
    queueMicrotask(() => {
      this.resumeQueued = false;
      if (!this.paused || this.state === 'done') return;
      this.paused = false;
      this.resumeUndici?.();
    });
  }

  /** Ends the exchange now (the caller went away): undici drops the connection's request. */
  abort(err: Error): void {
    if (this.state === 'done') return;
    if (this.abortUndici) {
      this.abortUndici(err);
      return;
    }
    // No connection yet (queued behind the target's busy connections, or connecting): undici
    // aborts it when it would get one, which may be long after; the caller hears now, and knows
    // the request never left (`sent` is false).
    this.abortReason = err;
    // In a microtask: abort() may be called while the caller is still setting the exchange up.
    queueMicrotask(() => {
      if (this.state === 'waiting' && !this.gotConnection) this.fail(err);
    });
  }

  /** Reads and drops the body, keeping the connection for reuse. */
  discard(): void {
    if (!this.sink) this.pipe(discardSink);
  }
}

const ignore = (): void => {};

/**
 * An exchange's body as a Readable (Target.send), with undici's pause/resume as its backpressure.
 * Destroying it before its end aborts the exchange.
 */
export function readableBody(x: Exchange): Readable {
  const body = new Readable({
    // As much as undici's own body buffered before pausing (a device page of a sync is larger).
    highWaterMark: EARLY_LIMIT,
    read: () => x.resume(),
    // After the body's end or error the exchange is over and abort() does nothing.
    destroy: (err, cb) => {
      x.abort(err ?? new Error('the body was dropped before its end'));
      cb(err);
    },
  });
  // A body that fails with nobody reading it (dropped unread) must not crash the process; readers
  // still get the error through their own listeners.
  body.on('error', ignore);
  x.pipe({
    data: (c) => body.push(c),
    end: () => body.push(null),
    error: (e) => body.destroy(e),
  });
  return body;
}
