/**
 * Integrations: what admins configure (create, edit, verify, remove, pause…), where the UEM is
 * reached (directly, through a connector's own target, or through a target pushed to the connector),
 * and the runners that keep the inventory in sync. Secrets are sealed in the state file; the
 * inventory lives in SQLite.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/log.js';
import { open, seal } from '../../common/sealed.js';
import { Target } from '../../connector/targets/target.js';
import type { CloudTargetDefinition } from '../../connector/targets/schema.js';
import { UemError, type UemAdapter, type UemFetch, type UemGroup } from '../../uem/adapter.js';
import { createAdapter } from '../../uem/adapters/index.js';
import { throttleWaitMs } from '../../uem/adapters/hexnode.js';
import { targetFetch } from '../../uem/target-fetch.js';
import type { InventoryDb } from '../inventory/db.js';
import type { ManagedTargetsService } from '../managed-targets.js';
import type { RelayClient } from '../relay/client.js';
import type { SessionRegistry } from '../registry.js';
import type { CloudStore, IntegrationRecord } from '../state.js';
import { describeError, emptyStatus, placeholderEmail, resilientFetch, type AppPolicy } from './engine.js';
import { apiBaseOf, parseIntegrationInput, type IntegrationAuth, type IntegrationInput } from './model.js';
import { IntegrationRunner, type StatusPatch } from './runner.js';
import { redactString } from '../../common/redact.js';
import { ApiProblem } from './problem.js';
import { checkIfMatch } from './revision.js';

export { ApiProblem };

const tagsOn = (t: { deviceStatus: boolean; deviceRisk: boolean; threatFactors: boolean }): boolean => t.deviceStatus || t.deviceRisk || t.threatFactors;

export interface VerifyStep {
  id: string;
  title: string;
  status: 'pass' | 'fail' | 'skip';
  detail: string;
  hint?: string;
}

export interface VerifyResult {
  ok: boolean;
  failedStep: string | null;
  steps: VerifyStep[];
}

export interface IntegrationsOptions {
  store: CloudStore;
  key: Buffer;
  db: InventoryDb;
  relay: RelayClient;
  managed: ManagedTargetsService;
  registry: SessionRegistry;
  clock: Clock;
  logger: Logger;
  /** First retry backoff of UEM calls (default 1 s; tests use less). */
  retryBaseMs?: number;
  /** First runs after start come within this (jittered; default 30 s). */
  firstRunWithinMs?: number;
}

/** Credentials kept apart from the record, sealed with the cloud's secrets key. */
interface Secrets {
  password?: string;
  apiKey?: string;
  clientSecret?: string;
}

const newId = (): string => `int_${randomBytes(8).toString('hex')}`;

export class IntegrationsService {
  private readonly runners = new Map<string, IntegrationRunner>();
  private readonly targets = new Map<string, Target>();
  /** The tail of each integration's edits (serially). */
  private readonly edits = new Map<string, Promise<void>>();

  constructor(private readonly o: IntegrationsOptions) {}

  async start(): Promise<void> {
    const recs = (await this.o.store.read()).integrations;
    // Rows of integrations removed while a cloud stopped half-way (state written, rows not).
    const purged = this.o.db.purgeExcept(new Set(recs.map((r) => r.id)));
    if (purged > 0) this.o.logger.info('removed the inventory of integrations that no longer exist', { integrations: purged });
    for (const rec of recs) this.startRunner(rec);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
    this.runners.clear();
    for (const t of this.targets.values()) t.close();
    this.targets.clear();
  }

  private startRunner(rec: IntegrationRecord): void {
    const r = new IntegrationRunner(rec.id, {
      clock: this.o.clock,
      logger: this.o.logger,
      db: this.o.db,
      load: (id) => this.record(id),
      adapterFor: (x, signal) => this.adapterFor(x, signal),
      policies: (tenant) => this.policies(tenant),
      saveStatus: (id, patch) => this.saveStatus(id, patch),
    });
    this.runners.set(rec.id, r);
    r.start(rec, this.o.firstRunWithinMs ?? 30_000);
  }

  private async record(id: string): Promise<IntegrationRecord | undefined> {
    return (await this.o.store.read()).integrations.find((i) => i.id === id);
  }

  private async recordOf(tenant: string, id: string): Promise<IntegrationRecord> {
    const rec = await this.record(id);
    if (!rec || rec.tenant !== tenant) throw new ApiProblem(404, 'unknown_integration', `tenant "${tenant}" has no integration "${id}"`);
    return rec;
  }

  private async saveStatus(id: string, patch: StatusPatch): Promise<void> {
    await this.o.store.update((s) => {
      const rec = s.integrations.find((i) => i.id === id);
      if (rec) Object.assign(rec.status, patch);
    });
  }

  // ---- secrets and routes ----------------------------------------------------------------------

  private secretsOf(rec: IntegrationRecord): Secrets {
    return rec.authSealed ? (JSON.parse(open(this.o.key, rec.authSealed, rec.id)) as Secrets) : {};
  }

  private inputOf(rec: IntegrationRecord): IntegrationInput {
    const sec = this.secretsOf(rec);
    const input: IntegrationInput = { vendor: rec.vendor, displayName: rec.displayName, route: rec.route, sync: rec.sync, tagging: rec.tagging };
    if (rec.serverAddress) input.serverAddress = rec.serverAddress;
    if (rec.selfSignedCertPem) input.selfSignedCertPem = rec.selfSignedCertPem;
    if (rec.auth) {
      input.auth =
        rec.auth.type === 'oauth2'
          ? { type: 'oauth2', clientId: rec.auth.clientId ?? '', clientSecret: sec.clientSecret ?? '', tokenUrl: rec.auth.tokenUrl ?? '' }
          : { type: 'basic', ...(rec.auth.username ? { username: rec.auth.username } : {}), ...(sec.password ? { password: sec.password } : {}), ...(sec.apiKey ? { apiKey: sec.apiKey } : {}) };
    }
    return input;
  }

  /** The target definition the cloud itself (direct) or a connector (push) uses for this UEM. */
  static targetDefinition(id: string, input: IntegrationInput): CloudTargetDefinition {
    const a = input.auth as IntegrationAuth;
    let auth: CloudTargetDefinition['auth'];
    if (a.type === 'oauth2') auth = { type: 'oauth2', tokenUrl: a.tokenUrl, clientId: a.clientId, clientSecret: a.clientSecret, clientAuth: 'body', apiKeyHeader: 'aw-tenant-code' };
    else if (input.vendor === 'hexnode') auth = { type: 'apiKey', header: 'Authorization', value: a.apiKey ?? '', prefix: '' };
    else if (input.vendor === 'workspace-one') auth = { type: 'basic', username: a.username ?? '', password: a.password ?? '', apiKeyHeader: 'aw-tenant-code', ...(a.apiKey ? { apiKey: a.apiKey } : {}) };
    else auth = { type: 'basic', username: a.username ?? '', password: a.password ?? '', apiKeyHeader: 'aw-tenant-code' };
    return {
      id,
      baseUrl: apiBaseOf(input.vendor, input.serverAddress!),
      auth,
      tls: input.selfSignedCertPem ? { ca: input.selfSignedCertPem } : {},
      timeoutMs: 30_000,
      maxConcurrent: 16,
      allow: [],
    };
  }

  /** The id of the target pushed to connectors for an integration ("int-" + its id's hex). */
  static pushedTargetId(id: string): string {
    return `int-${id.slice(4)}`;
  }

  private fetchFor(rec: IntegrationRecord): UemFetch {
    const route = rec.route;
    if (route.via === 'connector') {
      const target = 'target' in route ? route.target : IntegrationsService.pushedTargetId(rec.id);
      // Only the route's group: another site's connector may serve a target of the same name, and
      // would carry this integration's calls (writes included) to another UEM.
      const group = route.group;
      return (path, init) => this.o.relay.fetch(rec.tenant, target, path, init, { group });
    }
    let t = this.targets.get(rec.id);
    if (!t) {
      t = Target.resolve(IntegrationsService.targetDefinition(rec.id, this.inputOf(rec)), { where: `integration ${rec.id}`, origin: 'cloud', clock: this.o.clock });
      this.targets.set(rec.id, t);
    }
    return targetFetch(t);
  }

  private async adapterFor(rec: IntegrationRecord, signal: AbortSignal): Promise<UemAdapter> {
    const f = resilientFetch(this.fetchFor(rec), {
      signal,
      clock: this.o.clock,
      baseMs: this.o.retryBaseMs ?? 1000,
      attempts: 4,
      maxRetryAfterMs: 120_000,
      // Hexnode states its wait only in the 429's body; without it, a sync of more than ~30 devices
      // spent its retries inside the throttle and failed.
      ...(rec.vendor === 'hexnode' ? { throttleWait: throttleWaitMs } : {}),
    });
    return createAdapter(rec.vendor, f);
  }

  /** One attempt, no retries: what the admin sees when pressing Verify or listing groups. */
  private quickAdapter(rec: IntegrationRecord): UemAdapter {
    return createAdapter(rec.vendor, this.fetchFor(rec));
  }

  // ---- CRUD ------------------------------------------------------------------------------------

  async list(tenant: string): Promise<IntegrationRecord[]> {
    return (await this.o.store.read()).integrations.filter((i) => i.tenant === tenant);
  }

  async get(tenant: string, id: string): Promise<IntegrationRecord> {
    return this.recordOf(tenant, id);
  }

  private toRecord(id: string, tenant: string, input: IntegrationInput, prev: IntegrationRecord | undefined, now: string): IntegrationRecord {
    const sec: Secrets = {};
    let auth: IntegrationRecord['auth'];
    if (input.auth?.type === 'oauth2') {
      sec.clientSecret = input.auth.clientSecret;
      auth = { type: 'oauth2', clientId: input.auth.clientId, tokenUrl: input.auth.tokenUrl };
    } else if (input.auth) {
      if (input.auth.password) sec.password = input.auth.password;
      if (input.auth.apiKey) sec.apiKey = input.auth.apiKey;
      auth = { type: 'basic', ...(input.auth.username ? { username: input.auth.username } : {}) };
    }
    const rec: IntegrationRecord = {
      id,
      tenant,
      vendor: input.vendor,
      displayName: input.displayName,
      route: input.route,
      sync: input.sync,
      tagging: input.tagging,
      paused: prev?.paused ?? false,
      groupsCache: prev?.groupsCache ?? [],
      status: prev?.status ?? {
        uemServer: emptyStatus('not verified yet', 'red'),
        deviceSync: emptyStatus('not synced yet', 'red'),
        appSync: emptyStatus('not synced yet', 'red'),
        tagging: tagsOn(input.tagging) ? emptyStatus('not tagged yet', 'red') : emptyStatus('tagging is off'),
        policyGroups: emptyStatus('no app policies'),
      },
      createdAt: prev?.createdAt ?? now,
      updatedAt: now,
    };
    if (input.serverAddress) rec.serverAddress = input.serverAddress;
    if (input.selfSignedCertPem) {
      try {
        new X509Certificate(input.selfSignedCertPem);
      } catch {
        throw new ApiProblem(400, 'bad_request', 'selfSignedCertPem: is not a valid certificate');
      }
      rec.selfSignedCertPem = input.selfSignedCertPem;
    }
    if (auth) rec.auth = auth;
    if (Object.keys(sec).length > 0) rec.authSealed = seal(this.o.key, JSON.stringify(sec), id);
    return rec;
  }

  /**
   * Which UEM an integration syncs, for the group rule, within its tenant. Across tenants two
   * integrations are never "the same UEM": a server address is only a name (a connector resolves it
   * on its own network, and a connector-target route does not use it at all), so a tenant naming
   * another tenant's server could claim its groups, lock it out of editing its own integration, and
   * learn from 409s which groups it syncs.
   */
  private static uemKey(rec: Pick<IntegrationRecord, 'tenant' | 'route' | 'serverAddress' | 'vendor'>): string {
    if (rec.serverAddress) return `${rec.tenant}:${rec.vendor}:${rec.serverAddress.toLowerCase().replace(/\/+$/, '')}`;
    const r = rec.route as { group?: string; target?: string };
    return `${rec.tenant}:${rec.vendor}:connector:${r.group}:${r.target}`;
  }

  /**
   * The guides' group rules: a selected group must exist; a group already integrated by another
   * integration of the same UEM — or whose parent (at any level) is — is refused.
   */
  private async checkGroups(rec: IntegrationRecord): Promise<UemGroup[]> {
    if (rec.sync.groups.length === 0) return rec.groupsCache as UemGroup[];
    let groups: UemGroup[];
    try {
      groups = await this.quickAdapter(rec).groups();
    } catch (e) {
      throw new ApiProblem(502, 'uem_unreachable', `cannot list the UEM's groups to check the selection: ${describeError(e)} (POST …/verify says which step fails)`);
    }
    const byId = new Map(groups.map((g) => [g.id, g]));
    rec.sync.groups.forEach((id, i) => {
      if (!byId.has(id)) throw new ApiProblem(400, 'bad_request', `sync.groups[${i}]: group "${id}" does not exist in the UEM (or the API account cannot see it)`);
    });
    IntegrationsService.checkOwnership(rec, groups, (await this.o.store.read()).integrations);
    return groups;
  }

  /**
   * A group and its children belong to one integration of a UEM: 409 group_conflict if another
   * integration of the same UEM among `all` has `rec`'s groups or one above them. Checked again
   * inside the write that stores `rec`: two creates at once each passed the check before either
   * was stored.
   */
  private static checkOwnership(rec: IntegrationRecord, groups: readonly UemGroup[], all: readonly IntegrationRecord[]): void {
    if (rec.sync.groups.length === 0) return;
    const byId = new Map(groups.map((g) => [g.id, g]));
    const key = IntegrationsService.uemKey(rec);
    const others = all.filter((x) => x.id !== rec.id && IntegrationsService.uemKey(x) === key);
    const conflict = (what: string, owner: IntegrationRecord): ApiProblem =>
      new ApiProblem(409, 'group_conflict', `sync.groups: ${what} by integration "${owner.displayName}" (${owner.id}); a group and its children belong to one integration`);
    const children = new Map<string, UemGroup[]>();
    for (const g of groups) if (g.parentId) children.set(g.parentId, [...(children.get(g.parentId) ?? []), g]);
    for (const id of rec.sync.groups) {
      // The group itself or one above it.
      for (let g: UemGroup | undefined = byId.get(id), first = true; g; g = g.parentId ? byId.get(g.parentId) : undefined, first = false) {
        const owner = others.find((x) => x.sync.groups.includes(g!.id));
        if (owner) throw conflict(first ? `group "${g.name}" (${g.id}) is already integrated` : `group "${byId.get(id)!.name}" (${id}) is inside "${g.name}" (${g.id}), which is already integrated`, owner);
      }
      // One below it: checked too, or the integration that had the child could no longer be
      // edited (its own group now inside one integrated by another).
      const seen = new Set<string>();
      for (const below = [...(children.get(id) ?? [])]; below.length > 0; ) {
        const g = below.pop()!;
        if (seen.has(g.id)) continue; // a cycle in what the UEM answered
        seen.add(g.id);
        const owner = others.find((x) => x.sync.groups.includes(g.id));
        if (owner) throw conflict(`group "${byId.get(id)!.name}" (${id}) contains "${g.name}" (${g.id}), which is already integrated`, owner);
        below.push(...(children.get(g.id) ?? []));
      }
    }
  }

  private static isPush(rec: IntegrationRecord): boolean {
    return rec.route.via === 'connector' && 'push' in rec.route;
  }

  /**
   * Takes back what pushIfNeeded did for a change that then failed (the UEM unreachable, a group
   * conflict): the pushed target goes back to `prev`'s definition, or away if there was none, so a
   * refused request leaves the connectors' targets as they were.
   */
  private async undoPush(rec: IntegrationRecord, prev: IntegrationRecord | undefined): Promise<void> {
    if (!IntegrationsService.isPush(rec)) return;
    try {
      if (prev && IntegrationsService.isPush(prev)) await this.pushIfNeeded(prev);
      else await this.o.managed.remove(rec.tenant, IntegrationsService.pushedTargetId(rec.id));
    } catch (err) {
      this.o.logger.error('cannot take back the pushed target of a refused integration change', { integration: rec.id, err });
    }
  }

  private async pushIfNeeded(rec: IntegrationRecord): Promise<void> {
    if (rec.route.via !== 'connector' || !('push' in rec.route)) return;
    const def = IntegrationsService.targetDefinition(IntegrationsService.pushedTargetId(rec.id), this.inputOf(rec));
    const { id: _id, ...rest } = def;
    await this.o.managed.put(rec.tenant, IntegrationsService.pushedTargetId(rec.id), { ...rest, group: rec.route.group });
  }

  async create(tenant: string, body: unknown): Promise<IntegrationRecord> {
    const input = parseIntegrationInput(body);
    const now = new Date(this.o.clock.now()).toISOString();
    const rec = this.toRecord(newId(), tenant, input, undefined, now);
    // Pushed first: the group check below reaches the UEM through the pushed target.
    await this.pushIfNeeded(rec);
    try {
      const groups = await this.checkGroups(rec);
      rec.groupsCache = groups.map((g) => ({ id: g.id, name: g.name, kind: g.kind, parentId: g.parentId }));
      await this.o.store.update((s) => {
        IntegrationsService.checkOwnership(rec, groups, s.integrations);
        if (!Object.hasOwn(s.tenants, tenant)) s.tenants[tenant] = { createdAt: now }; // own keys only: a plain object inherits some
        s.integrations.push(rec);
      });
    } catch (e) {
      await this.undoPush(rec, undefined);
      throw e;
    }
    this.o.logger.info('integration created', { integration: rec.id, tenant, vendor: rec.vendor, route: rec.route.via });
    this.startRunner(rec);
    return rec;
  }

  /**
   * Runs `fn` after the edits of integration `id` already under way. An edit reads the record,
   * asks the UEM for its groups (a round trip of seconds) and writes: two at once each wrote its
   * own merge of what it had read, so one admin's change was silently lost; and a removal during
   * an edit was followed by the edit's undo putting its pushed target (credentials included) back
   * on the connectors. One cloud process serves the API and the console, so this is enough.
   */
  private serially<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.edits.get(id) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.edits.set(id, tail);
    void tail.then(() => {
      if (this.edits.get(id) === tail) this.edits.delete(id);
    });
    return run;
  }

  /**
   * Edit: validated against the current settings, groups re-checked; applies on the next run.
   * `ifMatch`: the caller's If-Match (revision.ts); the edit is refused with 412 unless it names the
   * current revision.
   */
  update(tenant: string, id: string, body: unknown, opts: { ifMatch?: string | undefined } = {}): Promise<IntegrationRecord> {
    return this.serially(id, () => this.updateNow(tenant, id, body, opts.ifMatch));
  }

  private async updateNow(tenant: string, id: string, body: unknown, ifMatch: string | undefined): Promise<IntegrationRecord> {
    const prev = await this.recordOf(tenant, id);
    checkIfMatch(ifMatch, prev);
    const input = parseIntegrationInput(body, this.inputOf(prev));
    const now = new Date(this.o.clock.now()).toISOString();
    const rec = this.toRecord(id, tenant, input, prev, now);
    // A direct route's client is replaced only when how it reaches the UEM changed: closing it
    // under a running sync (a rename, new sync settings) failed that sync for nothing.
    const reach = (r: IntegrationRecord): string => (r.route.via === 'direct' ? JSON.stringify(IntegrationsService.targetDefinition(id, this.inputOf(r))) : '');
    if (reach(prev) !== reach(rec)) {
      this.targets.get(id)?.close();
      this.targets.delete(id);
    }
    await this.pushIfNeeded(rec);
    try {
      const groups = await this.checkGroups(rec);
      rec.groupsCache = groups.map((g) => ({ id: g.id, name: g.name, kind: g.kind, parentId: g.parentId }));
      await this.o.store.update((s) => {
        const i = s.integrations.findIndex((x) => x.id === id);
        if (i < 0) throw new ApiProblem(404, 'unknown_integration', `integration "${id}" was removed meanwhile`);
        IntegrationsService.checkOwnership(rec, groups, s.integrations);
        // Pause and status may have changed while the groups were checked (a Pause, a sync's
        // result): the edit changes the settings, not those.
        const cur = s.integrations[i]!;
        rec.paused = cur.paused;
        rec.status = cur.status;
        // Tagging switched on: red until its first pass (as a new integration's), not "tagging is off".
        if (tagsOn(rec.tagging) && !tagsOn(prev.tagging) && rec.status.tagging.indicator === 'gray') rec.status = { ...rec.status, tagging: emptyStatus('not tagged yet', 'red') };
        s.integrations[i] = rec;
      });
    } catch (e) {
      await this.undoPush(rec, prev);
      throw e;
    }
    // Moved off a pushed target (to a connector's own target, or direct): the pushed one goes.
    if (IntegrationsService.isPush(prev) && !IntegrationsService.isPush(rec)) {
      await this.o.managed.remove(tenant, IntegrationsService.pushedTargetId(id)).catch((err: unknown) => this.o.logger.error('cannot withdraw the pushed target of an integration moved off it', { integration: id, err }));
    }
    // Groups chosen or changed (the wizard: create, verify, then choose): synced now, not an
    // interval (up to a day) later.
    if (!rec.paused && [...rec.sync.groups].sort().join('\n') !== [...prev.sync.groups].sort().join('\n')) this.runners.get(id)?.deviceSyncSoon();
    else if (rec.sync.deviceSyncIntervalMinutes < prev.sync.deviceSyncIntervalMinutes || rec.sync.appSyncIntervalMinutes < prev.sync.appSyncIntervalMinutes) this.runners.get(id)?.intervalsChanged(rec);
    // Switches turned off erase what was stored under them.
    const off = { name: prev.sync.pii.deviceName && !rec.sync.pii.deviceName, phone: prev.sync.pii.deviceNumber && !rec.sync.pii.deviceNumber, email: prev.sync.pii.email && !rec.sync.pii.email };
    if (off.name || off.phone || off.email) this.o.db.erasePii(id, off, (udid, devId) => placeholderEmail(rec.vendor, udid, devId));
    this.o.logger.info('integration updated', { integration: id, tenant });
    return rec;
  }

  /** Remove: stops the schedule (aborting a running sync), withdraws a pushed target, deletes the data. */
  remove(tenant: string, id: string, opts: { ifMatch?: string | undefined } = {}): Promise<void> {
    return this.serially(id, () => this.removeNow(tenant, id, opts.ifMatch));
  }

  private async removeNow(tenant: string, id: string, ifMatch: string | undefined): Promise<void> {
    checkIfMatch(ifMatch, await this.recordOf(tenant, id));
    await this.runners.get(id)?.stop();
    this.runners.delete(id);
    this.targets.get(id)?.close();
    this.targets.delete(id);
    // Whatever the route now: an integration moved off a pushed target before that withdrew it
    // left the target behind (absent, this is a no-op).
    await this.o.managed.remove(tenant, IntegrationsService.pushedTargetId(id)).catch(() => {});
    // The rows first: a stop between the two then leaves an integration with an empty inventory
    // (its next sync fills it), never rows, with their PII, that nothing owns.
    this.o.db.deleteIntegration(id);
    await this.o.store.update((s) => {
      s.integrations = s.integrations.filter((x) => x.id !== id);
    });
    this.o.logger.info('integration removed', { integration: id, tenant });
  }

  async syncNow(tenant: string, id: string): Promise<void> {
    await this.recordOf(tenant, id);
    void this.runners.get(id)?.syncNow();
  }

  /** Waits for the syncs started by syncNow (tests and the console's "sync and wait"). */
  async syncAndWait(tenant: string, id: string): Promise<void> {
    await this.recordOf(tenant, id);
    await this.runners.get(id)?.syncNow();
  }

  async setPaused(tenant: string, id: string, paused: boolean): Promise<IntegrationRecord> {
    await this.recordOf(tenant, id);
    let rec: IntegrationRecord | undefined;
    await this.o.store.update((s) => {
      rec = s.integrations.find((x) => x.id === id);
      // Removed since recordOf looked (a DELETE at the same time).
      if (!rec) throw new ApiProblem(404, 'unknown_integration', `integration "${id}" was removed meanwhile`);
      rec.paused = paused;
    });
    const r = this.runners.get(id);
    if (paused) r?.pause();
    else r?.resume(rec!);
    return rec!;
  }

  retag(integrationId: string): void {
    this.runners.get(integrationId)?.retag();
  }

  // ---- verify and groups -----------------------------------------------------------------------

  async groups(tenant: string, id: string): Promise<UemGroup[]> {
    const rec = await this.recordOf(tenant, id);
    try {
      const groups = await this.quickAdapter(rec).groups();
      await this.o.store.update((s) => {
        const r = s.integrations.find((x) => x.id === id);
        if (r) r.groupsCache = groups.map((g) => ({ id: g.id, name: g.name, kind: g.kind, parentId: g.parentId }));
      });
      return groups;
    } catch (e) {
      throw new ApiProblem(502, 'uem_unreachable', `cannot list the UEM's groups: ${describeError(e)}`);
    }
  }

  /** Reachability, TLS and credentials through the chosen route; says which step failed. */
  async verify(tenant: string, id: string): Promise<VerifyResult> {
    const rec = await this.recordOf(tenant, id);
    const steps: VerifyStep[] = [];
    const push = (s: VerifyStep): void => void steps.push({ ...s, detail: redactString(s.detail) });
    const r = rec.route;
    if (r.via === 'connector') {
      const live = this.o.registry.list({ tenant }).filter((l) => l.group === r.group);
      if (live.length === 0) {
        push({ id: 'connector', title: `A connector of group "${r.group}"`, status: 'fail', detail: `no connector of tenant "${tenant}" in group "${r.group}" is connected`, hint: 'check the connector (its local page or "uemlink connector diagnose")' });
      } else {
        const target = 'target' in r ? r.target : IntegrationsService.pushedTargetId(rec.id);
        const serving = live.filter((l) => l.targets.includes(target));
        if (serving.length > 0) push({ id: 'connector', title: `A connector of group "${r.group}"`, status: 'pass', detail: `${serving.length} connected connector(s) serve target "${target}"` });
        else if ('push' in r) {
          const m = (await this.o.managed.list(tenant)).find((t) => t.id === target);
          const decisions = m?.connectors.map((c) => `${c.id}: ${c.state}${c.reason ? ` (${c.reason})` : ''}`).join('; ') || 'no answer yet';
          push({ id: 'connector', title: 'The connector accepted the pushed server details', status: 'fail', detail: `target "${target}" is not active on any connector: ${decisions}`, hint: 'approve it on the connector\'s local page, or add the UEM host to cloudManagedTargets.allowedHosts' });
        } else {
          push({ id: 'connector', title: `A connector of group "${r.group}"`, status: 'fail', detail: `the connected connectors of group "${r.group}" have no target "${target}"`, hint: 'define that target in the connector\'s config (targets[].id)' });
        }
      }
    } else {
      push({ id: 'connector', title: 'Route', status: 'skip', detail: 'direct: the cloud reaches the UEM itself' });
    }
    if (steps.some((s) => s.status === 'fail')) {
      push({ id: 'reachability', title: 'The UEM server answers', status: 'skip', detail: 'not tried: the route is not available' });
    } else {
      try {
        await this.quickAdapter(rec).ping();
        push({ id: 'reachability', title: 'The UEM server answers', status: 'pass', detail: 'the server answered' });
        push({ id: 'tls', title: 'TLS certificate', status: 'pass', detail: 'trusted' });
        push({ id: 'credentials', title: 'Credentials', status: 'pass', detail: 'accepted by the UEM' });
      } catch (e) {
        const msg = describeError(e);
        const code = e instanceof UemError ? (/HTTP \d+ (\w+)/.exec(e.message)?.[1] ?? '') : '';
        if (code === 'upstream_tls') {
          push({ id: 'reachability', title: 'The UEM server answers', status: 'pass', detail: 'a TLS server answered' });
          push({ id: 'tls', title: 'TLS certificate', status: 'fail', detail: msg, hint: rec.route.via === 'direct' ? 'paste the UEM\'s CA certificate (PEM) as selfSignedCertPem' : 'set tls.caFile of the connector\'s target' });
        } else if (e instanceof UemError && e.kind === 'auth') {
          push({ id: 'reachability', title: 'The UEM server answers', status: 'pass', detail: 'the server answered' });
          push({ id: 'tls', title: 'TLS certificate', status: 'pass', detail: 'trusted' });
          push({ id: 'credentials', title: 'Credentials', status: 'fail', detail: msg, hint: 'check the user name, password and API key (or OAuth client) and the API account\'s role' });
        } else {
          push({ id: 'reachability', title: 'The UEM server answers', status: 'fail', detail: msg, hint: rec.route.via === 'direct' ? 'check serverAddress and that the cloud can reach it (or use a connector)' : 'run "uemlink connector diagnose" on the connector' });
        }
      }
    }
    const failed = steps.find((s) => s.status === 'fail');
    const ok = !failed;
    const now = new Date(this.o.clock.now()).toISOString();
    await this.saveStatus(id, { uemServer: { indicator: ok ? 'green' : 'red', message: ok ? 'verified: reachable, trusted, credentials accepted' : `${failed!.title}: ${failed!.detail}`, lastRun: now, lastSuccess: ok ? now : rec.status.uemServer.lastSuccess, counts: {} } });
    return { ok, failedStep: failed?.id ?? null, steps };
  }

  // ---- app policies ----------------------------------------------------------------------------

  async policies(tenant: string): Promise<AppPolicy[]> {
    return (await this.o.store.read()).appPolicies.filter((p) => p.tenant === tenant).map((p) => ({ name: p.name, active: p.active, apps: p.apps }));
  }

  async putPolicy(tenant: string, name: string, body: unknown): Promise<AppPolicy> {
    if (!/^[^\u0000-\u001f]{1,100}$/.test(name)) throw new ApiProblem(400, 'bad_request', 'policy name: 1-100 printable characters');
    const b = (body ?? {}) as Record<string, unknown>;
    const active = b.active === undefined ? true : b.active;
    if (typeof active !== 'boolean') throw new ApiProblem(400, 'bad_request', 'active: must be true or false');
    if (!Array.isArray(b.apps) || b.apps.length > 10_000 || !b.apps.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 300)) {
      throw new ApiProblem(400, 'bad_request', 'apps: must be a list of app identifiers (bundle ids, package names) or exact app names');
    }
    const p = { tenant, name, active, apps: [...new Set(b.apps as string[])], updatedAt: new Date(this.o.clock.now()).toISOString() };
    await this.o.store.update((s) => {
      s.appPolicies = s.appPolicies.filter((x) => !(x.tenant === tenant && x.name === name));
      s.appPolicies.push(p);
    });
    return { name, active, apps: p.apps };
  }

  async deletePolicy(tenant: string, name: string): Promise<void> {
    let found = false;
    await this.o.store.update((s) => {
      const before = s.appPolicies.length;
      s.appPolicies = s.appPolicies.filter((x) => !(x.tenant === tenant && x.name === name));
      found = s.appPolicies.length !== before;
    });
    if (!found) throw new ApiProblem(404, 'unknown_policy', `tenant "${tenant}" has no app policy "${name}"`);
  }
}
