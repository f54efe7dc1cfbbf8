/**
 * Cloud-managed targets, the cloud's side: an admin (or, later, an integration configured "through
 * the connector") defines a UEM for a tenant's connector group; the definition is stored sealed and
 * offered over the tunnel to every connector of that group, now and whenever one connects. Each
 * connector's local policy decides; its answers (accepted / pending / refused) are recorded.
 */
import type { ControlMessage } from '../protocol/control.js';
import type { Clock } from '../common/clock.js';
import { MIN_FRAME_BYTES } from '../common/config.js';
import { UemlinkError } from '../common/errors.js';
import { FRAME_HEADER_SIZE } from '../protocol/frame.js';
import { MAX_TARGETS_PER_CONNECTOR } from '../protocol/messages.js';
import type { Logger } from '../common/log.js';
import { open, seal } from '../common/sealed.js';
import { CloudTargetSchema, type CloudTargetDefinition } from '../connector/targets/schema.js';
import type { PresenceBook } from './presence-book.js';
import type { LiveSession, SessionRegistry } from './registry.js';
import { GROUP_RE, type CloudStore, type ConnectorRecord, type ManagedTargetRecord } from './state.js';

export interface ManagedTargetView {
  id: string;
  group: string;
  baseUrl: string;
  updatedAt: string;
  connectors: Array<{ id: string; state: string; reason?: string; at: string }>;
}

export class ManagedTargetsService {
  constructor(
    private readonly store: CloudStore,
    private readonly key: Buffer,
    private readonly registry: SessionRegistry,
    private readonly book: PresenceBook,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  /** One connector's failure to take a message (session closing) must not stop the others. */
  private send(live: LiveSession, msg: ControlMessage): void {
    try {
      live.session.sendControl(msg);
    } catch (err) {
      this.logger.warn('could not send a managed-target change to a connector; it gets the list when it reconnects', { connectorId: live.connectorId, type: msg.type, err });
    }
  }

  private definition(r: ManagedTargetRecord): CloudTargetDefinition {
    return CloudTargetSchema.parse(JSON.parse(open(this.key, r.sealed, `${r.tenant}/${r.id}`)));
  }

  /** Validates and stores a definition, then offers it to the group's connected connectors. */
  async put(tenant: string, id: string, body: Record<string, unknown>): Promise<ManagedTargetView> {
    const group = body.group === undefined ? 'default' : body.group;
    if (typeof group !== 'string' || !GROUP_RE.test(group)) throw new UemlinkError('INVALID_INPUT', 'group: must be a connector group name');
    const { group: _g, ...rest } = body;
    const parsed = CloudTargetSchema.safeParse({ ...rest, id });
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new UemlinkError('INVALID_INPUT', `${i.path.join('.') || 'definition'}: ${i.message}`);
    }
    const def = parsed.data;
    // Offered in one CONTROL frame: a definition that cannot fit the smallest frame a connector may
    // accept is refused here, before anything is stored.
    const offerBytes = Buffer.byteLength(JSON.stringify({ type: 'target.offer', target: def }));
    if (offerBytes > MIN_FRAME_BYTES - FRAME_HEADER_SIZE) {
      throw new UemlinkError('INVALID_INPUT', `definition: ${offerBytes} bytes once encoded, more than the ${MIN_FRAME_BYTES - FRAME_HEADER_SIZE} a tunnel frame is sure to carry (shorten the CA bundle or headers)`);
    }
    let previous: ManagedTargetRecord | undefined;
    const rec: ManagedTargetRecord = {
      tenant,
      group,
      id,
      baseUrl: def.baseUrl,
      sealed: seal(this.key, JSON.stringify(def), `${tenant}/${id}`),
      updatedAt: new Date(this.clock.now()).toISOString(),
    };
    await this.store.update((s) => {
      // Read in the same write that replaces it: read before, two moves at once could each see
      // the original group, and the one in between would never be told to withdraw it.
      previous = s.managedTargets.find((t) => t.tenant === tenant && t.id === id);
      // The group's ids go to its connectors in one frame (target.sync): bounded.
      const others = s.managedTargets.filter((t) => t.tenant === tenant && t.group === group && t.id !== id).length;
      if (others >= MAX_TARGETS_PER_CONNECTOR) throw new UemlinkError('INVALID_INPUT', `group: ${group} of tenant ${tenant} has ${others} cloud-managed targets, the most a connector serves (remove one, or use another group)`);
      if (!Object.hasOwn(s.tenants, tenant)) s.tenants[tenant] = { createdAt: rec.updatedAt }; // own keys only: a plain object inherits some
      s.managedTargets = s.managedTargets.filter((t) => !(t.tenant === tenant && t.id === id));
      s.managedTargets.push(rec);
    });
    // Moved to another group: the old group's connectors drop it.
    const before = previous as ManagedTargetRecord | undefined; // (assigned in the update above)
    if (before && before.group !== group) for (const live of this.sessionsOf(tenant, before.group)) this.send(live, { type: 'target.withdraw', id });
    for (const live of this.sessionsOf(tenant, group)) this.send(live, { type: 'target.offer', target: def });
    this.logger.info('cloud-managed target defined', { tenant, group, target: id, host: new URL(def.baseUrl).host });
    return this.view(rec, await this.store.read());
  }

  async remove(tenant: string, id: string): Promise<void> {
    let removed: ManagedTargetRecord | undefined;
    await this.store.update((s) => {
      removed = s.managedTargets.find((t) => t.tenant === tenant && t.id === id);
      if (!removed) throw new UemlinkError('NOT_FOUND', `tenant "${tenant}" has no cloud-managed target "${id}"`);
      s.managedTargets = s.managedTargets.filter((t) => t !== removed);
    });
    for (const live of this.sessionsOf(tenant, removed!.group)) this.send(live, { type: 'target.withdraw', id });
  }

  async list(tenant: string): Promise<ManagedTargetView[]> {
    const s = await this.store.read();
    return s.managedTargets.filter((t) => t.tenant === tenant).map((r) => this.view(r, s));
  }

  /**
   * A connector connected: offer it every definition of its tenant and group, then the full list,
   * so it drops any it was offered before and missed the withdrawal of while offline.
   */
  async onSession(live: LiveSession): Promise<void> {
    const s = await this.store.read();
    const mine = s.managedTargets.filter((t) => t.tenant === live.tenant && t.group === live.group);
    for (const r of mine) {
      try {
        this.send(live, { type: 'target.offer', target: this.definition(r) });
      } catch (err) {
        this.logger.error('cannot offer a stored cloud-managed target', { tenant: r.tenant, target: r.id, err });
      }
    }
    this.send(live, { type: 'target.sync', ids: mine.map((r) => r.id) });
  }

  /** A connector reported its decision on a definition. */
  async onStatus(live: LiveSession, msg: Extract<ControlMessage, { type: 'target.status' }>, current: ConnectorRecord | undefined): Promise<void> {
    const { id, state, reason } = msg;
    // Only targets this cloud offers the connector's tenant and group are recorded (and entries of
    // withdrawn ones dropped): a connector reporting made-up ids, of any length, grew the state file
    // every tenant's calls read, without bound.
    const s = await this.store.read();
    const offered = new Set(s.managedTargets.filter((t) => t.tenant === live.tenant && t.group === live.group).map((t) => t.id));
    if (!offered.has(id)) return;
    const entry = { id, state, at: new Date(this.clock.now()).toISOString(), ...(reason !== undefined ? { reason: reason.slice(0, 500) } : {}) } as ConnectorRecord['managedTargets'][number];
    const prev = this.book.peek(live.connectorId)?.managedTargets ?? current?.managedTargets ?? [];
    this.book.note(live.connectorId, { managedTargets: [...prev.filter((m) => m.id !== id && offered.has(m.id)), entry] });
    this.logger.info('cloud-managed target status', { connectorId: live.connectorId, target: id, state });
  }

  private sessionsOf(tenant: string, group: string): LiveSession[] {
    return this.registry.list({ tenant }).filter((l) => l.group === group);
  }

  private view(r: ManagedTargetRecord, s: { connectors: Record<string, ConnectorRecord> }): ManagedTargetView {
    const connectors: ManagedTargetView['connectors'] = [];
    for (const c of Object.values(s.connectors)) {
      if (c.tenant !== r.tenant || c.group !== r.group || c.revokedAt) continue;
      const m = (this.book.peek(c.id)?.managedTargets ?? c.managedTargets).find((x) => x.id === r.id);
      if (m) connectors.push({ id: c.id, state: m.state, at: m.at, ...(m.reason ? { reason: m.reason } : {}) });
    }
    return { id: r.id, group: r.group, baseUrl: r.baseUrl, updatedAt: r.updatedAt, connectors };
  }
}
