/**
 * V8 settings for the long-running processes. Two kinds: flags V8 reads while it runs, set by
 * `tuneV8()` when the `uemlink` command starts (Node does not accept them in NODE_OPTIONS, and the
 * systemd unit and the container both run the command); and flags V8 reads only when it creates the
 * heap, which must be on node's command line (NODE_FLAGS).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Node flags the launchers pass before the program's path: the wrapper scripts/install.sh writes
 * (which the systemd units run), the container's ENTRYPOINT, `npm run demo`, the first line of
 * cli/main.ts (package.json's bin: npx, a global install), and the test and benchmark processes
 * (test/helpers/procs.ts); tests check each against this list.
 *
 * `--initial-old-space-size=128`: the floor of V8's old-generation limit (V8's own comment on it:
 * "allow V8 to skip full GCs below that threshold"). A daemon's live heap is ~24 MiB, and V8's own
 * limit, about twice that, left ~24 MiB of room. During a transfer V8 started mark-compacts at
 * "allocation limit" with the heap itself at half its limit and next to nothing promoted, so, we
 * infer, what used the room were the buffers outside the heap that a transfer churns through (TLS
 * records, WebSocket messages). The cloud or the connector ran one every ~25 MiB relayed in about
 * half the runs (17-32 per 512 MiB), and those runs cost 6.2-7.2 s of relay CPU per GiB downloaded
 * against 4.4-5.3 in the others (docs/performance.md). With the floor: none in 22 of 23 runs, a
 * single one in the other, and the same peak RSS. A heap larger than 128 MiB (a cloud with
 * thousands of connectors) has a limit of V8's own above the floor; bench:scale re-run with the
 * flag measured the same RSS per step.
 */
export const NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

/**
 * The NODE_FLAGS this process was started without (node's own command line, `process.execArgv`).
 * A flag counts as given whatever its value and spelling (`--initial_old_space_size 256`): an admin
 * who chose another value chose it.
 */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  const name = (arg: string): string => arg.split('=')[0]!.replace(/_/g, '-');
  const given = new Set(execArgv.map(name));
  return NODE_FLAGS.filter((f) => !given.has(name(f)));
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
