/**
 * An integration's revision: a short digest of its settings (what PUT changes), served as the
 * `revision` field and checked against `If-Match` so that two admins editing
 * the same integration do not silently overwrite each other (RFC 9110 §13.1.1). Status, pause and
 * the cached group list are left out: a sync rewrites them every few minutes, and a revision that
 * changed with them would refuse every edit made while a sync runs.
 */
import { createHash } from 'node:crypto';
import type { IntegrationRecord } from '../state.js';
import { ApiProblem } from './problem.js';

/** JSON with object keys sorted, so a record built in memory and the same record read back agree. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

export function revisionOf(rec: IntegrationRecord): string {
  const { id, vendor, displayName, serverAddress, route, auth, authSealed, selfSignedCertPem, sync, tagging, updatedAt } = rec;
  // updatedAt too: a save that wrote the same values is still a save someone else made.
  const settings = { id, vendor, displayName, serverAddress, route, auth, authSealed, selfSignedCertPem, sync, tagging, updatedAt };
  return createHash('sha256').update(canonical(settings)).digest('base64url').slice(0, 22);
}

/**
 * Checks an `If-Match` value against the current record: `*` matches any existing integration,
 * otherwise one of the listed revisions must be the current one, given as an entity tag
 * (`"…"`, as RFC 9110 writes it) or bare. A weak tag (`W/"…"`) never matches (If-Match compares
 * strongly). Absent: no check, the edit applies to whatever is current.
 *
 * Why no `ETag` header: the integration's representation carries its status, which a sync changes
 * every few minutes while the revision stays; an ETag would have to change with it (or a cache's
 * `If-None-Match` would get a 304 hiding a new status), and then nearly every edit made during a
 * sync would be refused.
 */
export function checkIfMatch(ifMatch: string | undefined, rec: IntegrationRecord): void {
  if (ifMatch === undefined) return;
  const v = ifMatch.trim();
  if (v === '*') return;
  const tags = v.split(',').map((t) => t.trim());
  if (tags.some((t) => !/^(?:(?:W\/)?"[A-Za-z0-9_-]*"|[A-Za-z0-9_-]+)$/.test(t))) {
    throw new ApiProblem(400, 'bad_if_match', 'If-Match: must be "*" or one or more revisions (the integration\'s "revision" field), each in double quotes or bare, separated by commas');
  }
  const current = revisionOf(rec);
  if (!tags.some((t) => t === current || t === `"${current}"`)) {
    throw new ApiProblem(412, 'precondition_failed', `integration "${rec.id}" is at revision ${current}, not the one named in If-Match (${tags.join(', ')}): someone changed it since; read it again and re-apply the change`);
  }
}
