/**
 * Cloud-managed targets: target definitions the cloud pushes over the tunnel (a UEM configured in the
 * cloud dashboard "through the connector"). Local policy decides: a host matching
 * cloudManagedTargets.allowedHosts is accepted at once; anything else waits for a local admin's
 * approval (local page), or is refused. Definitions are stored in the state dir with their secrets
 * sealed by a key derived from the connector's private key.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import type { Clock } from '../common/clock.js';
import { UemlinkError } from '../common/errors.js';
import { JsonStore } from '../common/json-store.js';
import type { Logger } from '../common/log.js';
import { loadOrCreateKeyFile, open, seal } from '../common/sealed.js';
import { hostAllowed } from './host-policy.js';
import { CloudTargetSchema, type CloudTargetDefinition } from './targets/schema.js';
import { Target } from './targets/target.js';

export type ManagedState = 'accepted' | 'pending' | 'refused';

const Record_ = z.object({
  id: z.string(),
  host: z.string(),
  baseUrl: z.string(),
  state: z.enum(['accepted', 'pending', 'refused']),
  reason: z.string().optional(),
  offeredAt: z.string(),
  decidedAt: z.string().optional(),
  /** SHA-256 of the definition: an identical re-offer keeps the local decision. */
  hash: z.string().default(''),
  sealed: z.object({ v: z.literal(1), iv: z.string(), tag: z.string(), data: z.string() }),
});
type ManagedRecord = z.infer<typeof Record_>;
const Doc = z.object({ version: z.literal(1), targets: z.array(Record_) });

/** What status pages show: never the definition's secrets. */
export interface ManagedView {
  id: string;
  host: string;
  baseUrl: string;
  state: ManagedState;
  reason?: string;
  offeredAt: string;
  decidedAt?: string;
}

export interface ManagedTargetsOptions {
  stateDir: string;
  allowedHosts: string[];
  localIds: ReadonlySet<string>;
  logger: Logger;
  clock: Clock;
  /** Called whenever the set of accepted targets changes. */
  onChange(accepted: Target[]): void;
}

export class ManagedTargets {
  private readonly store: JsonStore<z.infer<typeof Doc>>;
  private key: Buffer | undefined;
  private accepted = new Map<string, Target>();

  constructor(private readonly o: ManagedTargetsOptions) {
    this.store = new JsonStore({ file: join(o.stateDir, 'managed-targets.json'), schema: Doc, what: 'cloud-managed targets', empty: () => ({ version: 1 as const, targets: [] }) });
  }

  /** The sealing key (its own file: it outlives certificate renewals, which change the connector's key). */
  private async sealingKey(): Promise<Buffer> {
    this.key ??= await loadOrCreateKeyFile(join(this.o.stateDir, 'managed-targets.key'), 'cloud-managed targets key');
    return this.key;
  }

  /** Loads and activates the accepted definitions. */
  async load(): Promise<void> {
    await this.sealingKey();
    const doc = await this.store.read();
    for (const r of doc.targets.filter((t) => t.state === 'accepted')) {
      try {
        this.activate(r);
      } catch (err) {
        this.o.logger.error('a stored cloud-managed target cannot be used', { target: r.id, err });
      }
    }
    this.changed();
  }

  private definitionOf(r: ManagedRecord): CloudTargetDefinition {
    return CloudTargetSchema.parse(JSON.parse(open(this.key!, r.sealed, r.id)));
  }

  private activate(r: ManagedRecord): void {
    const t = Target.resolve(this.definitionOf(r), { where: `cloud-managed target "${r.id}"`, origin: 'cloud', clock: this.o.clock });
    this.accepted.get(r.id)?.close();
    this.accepted.set(r.id, t);
  }

  private changed(): void {
    this.o.onChange([...this.accepted.values()]);
  }

  /** The cloud offers (or updates) a definition. Returns the decision to report back. */
  async offer(raw: unknown): Promise<{ id: string; state: ManagedState; reason?: string }> {
    const parsed = CloudTargetSchema.safeParse(raw);
    const id = typeof (raw as { id?: unknown })?.id === 'string' ? (raw as { id: string }).id.slice(0, 64) : '?';
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      return { id, state: 'refused', reason: `invalid definition: ${i.path.join('.')}: ${i.message}` };
    }
    const def = parsed.data;
    if (this.o.localIds.has(def.id)) return { id: def.id, state: 'refused', reason: 'a local target has the same id (local configuration wins)' };
    const text = JSON.stringify(def);
    const hash = createHash('sha256').update(text).digest('hex');
    const existing = (await this.store.read()).targets.find((t) => t.id === def.id);
    if (existing && existing.hash === hash) {
      // The cloud re-offers on every connect: an unchanged definition keeps the admin's decision.
      return existing.reason ? { id: def.id, state: existing.state, reason: existing.reason } : { id: def.id, state: existing.state };
    }
    const url = new URL(def.baseUrl);
    const host = url.hostname;
    const allowed = hostAllowed(host, this.o.allowedHosts);
    const now = new Date(this.o.clock.now()).toISOString();
    const rec: ManagedRecord = {
      id: def.id,
      host,
      baseUrl: def.baseUrl,
      state: allowed ? 'accepted' : 'pending',
      offeredAt: now,
      hash,
      sealed: seal(await this.sealingKey(), text, def.id),
    };
    if (allowed) rec.decidedAt = now;
    else rec.reason = `host "${host}" is not in cloudManagedTargets.allowedHosts; a local admin must approve it`;
    if (allowed) {
      // Resolve first: a definition that cannot be used (a bad CA, say) must not be stored as accepted.
      try {
        this.activate(rec);
      } catch (e) {
        return { id: def.id, state: 'refused', reason: `cannot use the definition: ${(e as Error).message}` };
      }
    }
    await this.store.update((d) => {
      d.targets = d.targets.filter((t) => t.id !== def.id);
      d.targets.push(rec);
    });
    if (!allowed && this.accepted.has(def.id)) {
      this.accepted.get(def.id)!.close();
      this.accepted.delete(def.id);
    }
    this.changed();
    this.o.logger.info('cloud-managed target offered', { target: def.id, host, state: rec.state });
    return rec.reason ? { id: def.id, state: rec.state, reason: rec.reason } : { id: def.id, state: rec.state };
  }

  /** A local admin decides on a pending (or refused) definition. */
  async decide(id: string, decision: 'accepted' | 'refused', reason?: string): Promise<ManagedView> {
    let rec: ManagedRecord | undefined;
    await this.store.update((d) => {
      rec = d.targets.find((t) => t.id === id);
      if (!rec) throw new UemlinkError('NOT_FOUND', `no cloud-managed target "${id}"`);
      rec.state = decision;
      rec.decidedAt = new Date(this.o.clock.now()).toISOString();
      if (decision === 'refused') rec.reason = reason ?? 'refused by a local admin';
      else delete rec.reason;
    });
    if (decision === 'accepted') this.activate(rec!);
    else {
      this.accepted.get(id)?.close();
      this.accepted.delete(id);
    }
    this.changed();
    this.o.logger.info('cloud-managed target decided', { target: id, state: decision });
    return view(rec!);
  }

  /** The cloud withdrew a definition. */
  async withdraw(id: string): Promise<void> {
    await this.store.update((d) => {
      d.targets = d.targets.filter((t) => t.id !== id);
    });
    this.accepted.get(id)?.close();
    if (this.accepted.delete(id)) this.changed();
  }

  /** The cloud's full list for this connector: anything else it once offered is gone. */
  async sync(ids: string[]): Promise<void> {
    const keep = new Set(ids);
    const gone = (await this.store.read()).targets.filter((t) => !keep.has(t.id)).map((t) => t.id);
    for (const id of gone) await this.withdraw(id);
  }

  async list(): Promise<ManagedView[]> {
    return (await this.store.read()).targets.map(view);
  }

  targets(): Target[] {
    return [...this.accepted.values()];
  }
}

function view(r: ManagedRecord): ManagedView {
  const v: ManagedView = { id: r.id, host: r.host, baseUrl: r.baseUrl, state: r.state, offeredAt: r.offeredAt };
  if (r.reason) v.reason = r.reason;
  if (r.decidedAt) v.decidedAt = r.decidedAt;
  return v;
}
