/**
 * V8 settings for the long-running processes. Two kinds: flags V8 reads while it runs, set by
 * `tuneV8()` when the `uemlink` command starts (Node does not accept them in NODE_OPTIONS, and the
 * systemd unit and the container both run the command); and flags V8 reads only when it creates the
 * heap, which must be on node's command line (NODE_FLAGS).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Node flags the launchers pass before the program's path: the wrapper scripts/install.sh writes
 * (which the systemd units run), the container's ENTRYPOINT, `npm run demo`, and the test and
 * benchmark processes (test/helpers/procs.ts); tests check each against this list.
 *
 * `--initial-old-space-size=128`: V8 skips full collections (mark-compacts) while the old generation
 * and the external memory allocated since the last one stay under 128 MiB. A daemon's live heap is
 * ~24 MiB, so V8's own limit (about twice that) left ~24 MiB of room, and a transfer churns through
 * buffers outside the heap (TLS records, WebSocket messages) that count against it: the cloud or the
 * connector ran a mark-compact every ~25 MiB relayed in most runs (18-30 per 512 MiB), and those
 * runs cost ~20 % more relay CPU per GiB (docs/performance.md). With the floor: none in 9 of 9
 * runs, and the same peak RSS. It changes nothing for a heap already larger (a cloud with thousands
 * of connectors), and it does not stop the idle-time memory reducer.
 */
export const NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

/** The NODE_FLAGS this process was started without (node's own command line, `process.execArgv`). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return NODE_FLAGS.filter((f) => !execArgv.includes(f));
}

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
