/**
 * The inventory database's errors, opening it and while the cloud runs, naming the file and saying
 * what an operator can do: SQLite's own words ("database or disk is full") name no file.
 */
import { UemlinkError, type ErrorCode } from '../../common/errors.js';

/** An error opening the file, naming it, with what an admin can do (SQLite's own words name nothing). */
export function openError(file: string, e: unknown): UemlinkError {
  const code = (e as { code?: string }).code ?? '';
  const msg = (e as Error).message;
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new UemlinkError('STATE_CORRUPT', `inventory database ${file} is not a readable SQLite database (${msg}): restore it from a backup, or move it aside (the next syncs rebuild devices and apps from the UEMs; verdicts and tag memberships are lost)`, { cause: e });
  }
  return new UemlinkError('STATE_UNREADABLE', `inventory database ${file} cannot be opened: ${msg}`, { cause: e });
}

/**
 * A storage failure while the cloud runs (disk full, a read-only or failing disk, a damaged page, a
 * lock held elsewhere). SQLite's own words ("database or disk is full") name no file: the message
 * names it for the operator's log; a tenant is shown `publicMessage`, without the cloud's paths.
 */
export class InventoryStorageError extends UemlinkError {
  constructor(
    readonly file: string,
    code: ErrorCode,
    readonly problem: string,
    cause: unknown,
  ) {
    super(code, `inventory database ${file}: ${problem}`, { cause, retryable: code !== 'STATE_CORRUPT' });
    this.name = 'InventoryStorageError';
  }

  override get publicMessage(): string {
    // The problem in a word ("disk full", "busy"): the advice after a colon is the operator's.
    return `the cloud could not use its inventory database (${this.problem.split(':')[0]}): nothing was changed, and the cloud's operator has the details in its log`;
  }
}

const RUNTIME_PROBLEMS: Array<[prefix: string, code: ErrorCode, problem: string]> = [
  ['SQLITE_FULL', 'STATE_WRITE_FAILED', 'disk full'],
  ['SQLITE_READONLY', 'STATE_WRITE_FAILED', 'cannot be written (read-only file system, file or directory)'],
  ['SQLITE_IOERR', 'STATE_WRITE_FAILED', 'disk I/O error'],
  ['SQLITE_CANTOPEN', 'STATE_UNREADABLE', 'its files cannot be opened'],
  ['SQLITE_CORRUPT', 'STATE_CORRUPT', 'damaged: restore it from a backup, or move it aside (the next syncs rebuild devices and apps)'],
  ['SQLITE_NOTADB', 'STATE_CORRUPT', 'not a SQLite database any more: restore it from a backup, or move it aside'],
  ['SQLITE_BUSY', 'STATE_LOCKED', 'busy: another process holds a lock on it'],
  ['SQLITE_LOCKED', 'STATE_LOCKED', 'busy: another process holds a lock on it'],
];

/** SQLite's errors of the disk and the file as InventoryStorageError; anything else (a bug) unchanged. */
export function storageError(file: string, e: unknown): unknown {
  if (e instanceof UemlinkError) return e;
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return e;
  const known = RUNTIME_PROBLEMS.find(([prefix]) => code === prefix || code.startsWith(`${prefix}_`));
  return known ? new InventoryStorageError(file, known[1], `${known[2]} (${code})`, e) : e;
}

/**
 * Makes every method of `cls` report the disk's and the file's failures as InventoryStorageError,
 * naming the file (a sync that failed with "database or disk is full" named nothing): once, here,
 * rather than a try in each of ~30 methods. Nested calls pass an already named error through. A
 * generator's queries run as its caller iterates, after the call returned: the iteration is
 * wrapped, not the call.
 */
export function wrapStorageErrors(cls: { prototype: { readonly file: string } }): void {
  type Owner = { readonly file: string };
  for (const name of Object.getOwnPropertyNames(cls.prototype)) {
    const d = Object.getOwnPropertyDescriptor(cls.prototype, name);
    if (name === 'constructor' || typeof d?.value !== 'function') continue;
    const method = d.value as (this: Owner, ...args: unknown[]) => unknown;
    const wrapped =
      Object.prototype.toString.call(method) === '[object GeneratorFunction]'
        ? function* (this: Owner, ...args: unknown[]): Generator<unknown, unknown, unknown> {
            try {
              return yield* method.apply(this, args) as Generator<unknown, unknown, unknown>;
            } catch (e) {
              throw storageError(this.file, e);
            }
          }
        : function (this: Owner, ...args: unknown[]): unknown {
            try {
              return method.apply(this, args);
            } catch (e) {
              throw storageError(this.file, e);
            }
          };
    Object.defineProperty(cls.prototype, name, { ...d, value: wrapped });
  }
}
