/**
 * Cloud-managed targets: target definitions the cloud pushes over the tunnel (a UEM configured in the
 * cloud dashboard "through the connector"). Local policy decides: a host matching
 * cloudManagedTargets.allowedHosts is accepted at once; anything else waits for a local admin's
 * approval (local page), or is refused. Definitions are stored in the state dir with their secrets
 * sealed by a key derived from the connector's private key.
 */
import type { OAuthFailure } from './targets/auth.js';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import type { Clock } from '../common/clock.js';
import { UemlinkError } from '../common/errors.js';
import { JsonStore } from '../common/json-store.js';
import type { Logger } from '../common/log.js';
import { loadOrCreateKeyFile, open, seal } from '../common/sealed.js';
import { hostAllowed } from './host-policy.js';

/** A host the connector would contact, and the port when known. */
interface Endpoint {
  host: string;
  port?: number;
}
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
  /** Every host the definition makes the connector contact (its base URL's, an OAuth2 token URL's). */
  contacts: z.array(z.string()).optional(),
  /** Who accepted it: cloudManagedTargets.allowedHosts (checked again at every start and re-offer) or a local admin. */
  decidedBy: z.enum(['policy', 'admin']).optional(),
  sealed: z.object({ v: z.literal(1), iv: z.string(), tag: z.string(), data: z.string() }),
});
type ManagedRecord = z.infer<typeof Record_>;
const Doc = z.object({ version: z.literal(1), targets: z.array(Record_) });

/** What status pages show: never the definition's secrets. */
export interface ManagedView {
  id: string;
  host: string;
  baseUrl: string;
  /** Every host it contacts (base URL, OAuth2 token URL): what an admin approves. */
  contacts: string[];
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
  /** Each OAuth2 token request of target `id` (the daemon's metrics count them as for local targets). */
  onTokenRequest?(id: string, outcome: 'ok' | OAuthFailure): void;
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

  /**
   * Loads and activates the accepted definitions. One accepted by policy whose hosts the policy no
   * longer allows (the admin narrowed allowedHosts) goes back to pending: it must not stay routable.
   */
  async load(): Promise<void> {
    await this.sealingKey();
    const stored = await this.store.read();
    if (stored.targets.some((r) => this.outsidePolicy(r) !== undefined)) {
      try {
        await this.store.update((d) => {
          for (const r of d.targets) this.recheckPolicy(r);
        });
      } catch (err) {
        // Not recorded (a full disk): still not activated below; recorded at the next start.
        this.o.logger.error('cannot record that cloud-managed targets went back to pending', { err });
      }
    }
    const doc = await this.store.read();
    for (const r of doc.targets.filter((t) => t.state === 'accepted' && this.outsidePolicy(t) === undefined)) {
      if (!this.readable(r)) {
        this.o.logger.warn('a stored cloud-managed target was sealed under a key this version does not have (an upgrade): it is used again when the cloud offers it at the next connection', { target: r.id });
        continue;
      }
      try {
        this.activate(r);
      } catch (err) {
        this.o.logger.error('a stored cloud-managed target cannot be used', { target: r.id, err });
      }
    }
    this.changed();
  }

  /** Every host a definition makes the connector contact. */
  private static contactsOf(def: CloudTargetDefinition): string[] {
    const hosts = [new URL(def.baseUrl).hostname];
    if (def.auth?.type === 'oauth2') hosts.push(new URL(def.auth.tokenUrl).hostname);
    return [...new Set(hosts)];
  }

  /** Every host and port a definition makes the connector contact (what the policy judges). */
  private static endpointsOf(def: CloudTargetDefinition): Endpoint[] {
    const urls = [def.baseUrl, ...(def.auth?.type === 'oauth2' ? [def.auth.tokenUrl] : [])];
    return urls.map((u) => {
      const x = new URL(u);
      return { host: x.hostname, port: Number(x.port) || (x.protocol === 'https:' ? 443 : 80) };
    });
  }

  /** The first endpoint the policy does not allow, as "host:port" (or the host, port unknown). */
  private static outside(endpoints: Endpoint[], allowed: readonly string[]): string | undefined {
    const e = endpoints.find((x) => !hostAllowed(x.host, allowed, x.port));
    return e && (e.port === undefined ? e.host : `${e.host}:${e.port}`);
  }

  /**
   * Whether this process can open the record's sealed definition. Versions before the
   * `managed-targets.key` file sealed under a key derived from the connector's own key: after an
   * upgrade (or a renewal) those records cannot be opened, and must neither stop the start nor be
   * used; the cloud's next offer of the same definition seals it again (offer()).
   */
  private readable(r: ManagedRecord): boolean {
    try {
      this.definitionOf(r);
      return true;
    } catch {
      return false;
    }
  }

  /** A host a policy-accepted record contacts that the policy no longer allows, if any. */
  private outsidePolicy(r: ManagedRecord): string | undefined {
    if (r.state !== 'accepted' || r.decidedBy === 'admin') return undefined;
    // An unreadable record without stored contacts is not activated (load) and not judged here;
    // with them, their ports are unknown, so only patterns without a port can allow it.
    if (this.readable(r)) return ManagedTargets.outside(ManagedTargets.endpointsOf(this.definitionOf(r)), this.o.allowedHosts);
    if (!r.contacts) return undefined;
    return ManagedTargets.outside(r.contacts.map((host) => ({ host })), this.o.allowedHosts);
  }

  /** Puts a policy-accepted record back to pending when the policy no longer allows all it contacts. */
  private recheckPolicy(r: ManagedRecord): void {
    const outside = this.outsidePolicy(r);
    if (outside === undefined) return;
    r.state = 'pending';
    r.reason = `host "${outside}" is no longer in cloudManagedTargets.allowedHosts; a local admin must approve it`;
    delete r.decidedAt;
    this.o.logger.warn('cloud-managed target no longer allowed by policy: pending approval', { target: r.id, host: outside });
  }

  private definitionOf(r: ManagedRecord): CloudTargetDefinition {
    return CloudTargetSchema.parse(JSON.parse(open(this.key!, r.sealed, r.id)));
  }

  private activate(r: ManagedRecord): void {
    const hook = this.o.onTokenRequest;
    const t = Target.resolve(this.definitionOf(r), {
      where: `cloud-managed target "${r.id}"`,
      origin: 'cloud',
      clock: this.o.clock,
      ...(hook ? { oauthHooks: { onTokenRequest: (outcome: 'ok' | OAuthFailure) => hook(r.id, outcome) } } : {}),
    });
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
    if (existing && existing.hash === hash && !this.readable(existing)) {
      // The definition the decision was made on, sealed under a key this version does not have
      // (readable()): sealed again, the decision kept, and used if it was accepted.
      const sealed = seal(await this.sealingKey(), text, def.id);
      const contacts = ManagedTargets.contactsOf(def);
      let cur = existing;
      await this.store.update((d) => {
        const r = d.targets.find((t) => t.id === def.id);
        if (!r) return;
        r.sealed = sealed;
        r.contacts = contacts;
        this.recheckPolicy(r);
        cur = r;
      });
      if (cur.state === 'accepted') {
        try {
          this.activate(cur);
          this.changed();
        } catch (err) {
          this.o.logger.error('a stored cloud-managed target cannot be used', { target: def.id, err });
        }
      }
      return cur.reason ? { id: def.id, state: cur.state, reason: cur.reason } : { id: def.id, state: cur.state };
    }
    if (existing && existing.hash === hash) {
      // The cloud re-offers on every connect: an unchanged definition keeps the admin's decision
      // (one the policy made is checked against the policy as it is now).
      let cur = existing;
      if (this.outsidePolicy(existing) !== undefined) {
        await this.store.update((d) => {
          const r = d.targets.find((t) => t.id === def.id);
          if (r) this.recheckPolicy(r);
          if (r) cur = r;
        });
        if (cur.state !== 'accepted' && this.deactivate(def.id)) this.changed();
      }
      return cur.reason ? { id: def.id, state: cur.state, reason: cur.reason } : { id: def.id, state: cur.state };
    }
    const host = new URL(def.baseUrl).hostname;
    // Every host it would contact, not only the base URL's: an OAuth2 token URL elsewhere would make
    // the connector POST to a host the policy never allowed (and tell the cloud what answered).
    const contacts = ManagedTargets.contactsOf(def);
    const outside = ManagedTargets.outside(ManagedTargets.endpointsOf(def), this.o.allowedHosts);
    const allowed = outside === undefined;
    // offeredAt tells offers apart (an approval names the one it saw): strictly later than the last.
    const at = Math.max(this.o.clock.now(), existing ? Date.parse(existing.offeredAt) + 1 : 0);
    const now = new Date(at).toISOString();
    const rec: ManagedRecord = {
      id: def.id,
      host,
      baseUrl: def.baseUrl,
      state: allowed ? 'accepted' : 'pending',
      offeredAt: now,
      hash,
      contacts,
      sealed: seal(await this.sealingKey(), text, def.id),
    };
    if (allowed) {
      rec.decidedAt = now;
      rec.decidedBy = 'policy';
    } else rec.reason = `host "${outside}" is not in cloudManagedTargets.allowedHosts; a local admin must approve it`;
    if (allowed) {
      // Resolve first: a definition that cannot be used (a bad CA, say) must not be stored as accepted.
      try {
        this.activate(rec);
      } catch (e) {
        const reason = `cannot use the definition: ${(e as Error).message}`;
        // Refused, and stored as refused: the version accepted before stops being served. The cloud
        // showed this connector as refusing the target while it went on relaying to the old
        // definition's UEM (and loaded it again at every start).
        rec.state = 'refused';
        rec.reason = reason;
        delete rec.decidedAt;
        delete rec.decidedBy;
        await this.store.update((d) => {
          d.targets = d.targets.filter((t) => t.id !== def.id);
          d.targets.push(rec);
        });
        this.deactivate(def.id);
        this.changed();
        this.o.logger.warn('cloud-managed target refused: its definition cannot be used', { target: def.id, reason });
        return { id: def.id, state: 'refused', reason };
      }
    }
    await this.store.update((d) => {
      d.targets = d.targets.filter((t) => t.id !== def.id);
      d.targets.push(rec);
    });
    if (!allowed) this.deactivate(def.id);
    this.changed();
    this.o.logger.info('cloud-managed target offered', { target: def.id, host, state: rec.state });
    return rec.reason ? { id: def.id, state: rec.state, reason: rec.reason } : { id: def.id, state: rec.state };
  }

  /**
   * A local admin decides on a pending (or refused) definition. `offeredAt`, when given, is the
   * offer the admin saw: should the cloud have offered another definition since, the decision is
   * refused (CONFLICT) rather than applied to what the admin never saw.
   */
  async decide(id: string, decision: 'accepted' | 'refused', reason?: string, offeredAt?: string): Promise<ManagedView> {
    let rec: ManagedRecord | undefined;
    await this.store.update((d) => {
      rec = d.targets.find((t) => t.id === id);
      if (!rec) throw new UemlinkError('NOT_FOUND', `no cloud-managed target "${id}"`);
      if (offeredAt !== undefined && rec.offeredAt !== offeredAt) {
        throw new UemlinkError('CONFLICT', `the cloud changed target "${id}" since this page was shown (offered again at ${rec.offeredAt}); review it again`);
      }
      rec.state = decision;
      rec.decidedBy = 'admin';
      rec.decidedAt = new Date(this.o.clock.now()).toISOString();
      if (decision === 'refused') rec.reason = reason ?? 'refused by a local admin';
      else delete rec.reason;
    });
    if (decision === 'accepted') this.activate(rec!);
    else this.deactivate(id);
    this.changed();
    this.o.logger.info('cloud-managed target decided', { target: id, state: decision });
    return view(rec!);
  }

  /** The cloud withdrew a definition. */
  async withdraw(id: string): Promise<void> {
    await this.store.update((d) => {
      d.targets = d.targets.filter((t) => t.id !== id);
    });
    if (this.deactivate(id)) this.changed();
  }

  /** Stops serving target `id` (its connections closed); whether it was being served. */
  private deactivate(id: string): boolean {
    this.accepted.get(id)?.close();
    return this.accepted.delete(id);
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
  const v: ManagedView = { id: r.id, host: r.host, baseUrl: r.baseUrl, contacts: r.contacts ?? [r.host], state: r.state, offeredAt: r.offeredAt };
  if (r.reason) v.reason = r.reason;
  if (r.decidedAt) v.decidedAt = r.decidedAt;
  return v;
}
