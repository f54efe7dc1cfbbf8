/**
 * V8 settings for the long-running processes, applied when the `uemlink` command starts (Node does
 * not accept them in NODE_OPTIONS, and the systemd unit and the container both run the command).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * `--no-allocation-site-pretenuring`. V8 watches where objects are created, and once the objects
 * of one place in the code have kept surviving young-generation collections it allocates that
 * place's objects in the old generation from then on, for the life of the process. A relayed
 * request's objects live for milliseconds, but a stall at the wrong moment (start-up, a burst) made
 * V8 decide that for one of them, and every later request paid for it: a dead old-generation
 * object counts as a root for young-generation collections until the next full one, so the young
 * objects it pointed to (the stream, the HTTP request and response, their closures) were promoted
 * with it, ~4 KiB per request, and scavenges cost ~20 µs per request instead of ~3.5. It happened
 * to the cloud in ~1 run in 5 once the session's stream tables no longer did it (then ChurnMaps,
 * now id-map.ts and ready-queue.ts); with
 * pretenuring off, in none of 22 (docs/performance.md). What pretenuring saves, copying objects
 * that really are long-lived out of the young generation, is small for these daemons: their
 * long-lived data is loaded once at start.
 */
export function tuneV8(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
