/**
 * Cancellation for the relay's hot path. An AbortController builds an EventTarget (and, on abort, a
 * DOMException) per request, which profiling showed as 4 % of the cloud's CPU per small relayed call
 * (docs/performance.md). The relay needs only "has it been cancelled" and "tell me when", which an
 * AbortSignal also offers: code that takes a CancelSignal accepts either.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A CancelSignal that is also its own controller. Listeners run once, on the first abort(). */
export class Cancel implements CancelSignal {
  aborted = false;
  private listeners: (() => void)[] = [];

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted) this.listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const run = this.listeners;
    this.listeners = [];
    for (const l of run) l();
  }
}
