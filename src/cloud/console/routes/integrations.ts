/** The integrations page: adding, editing, verifying, syncing, pausing and removing integrations. */
import type { Request, Response, Router } from 'express';
import type { Clock } from '../../../common/clock.js';
import { messageOf } from '../../../common/errors.js';
import { redactString } from '../../../common/redact.js';
import type { UemGroup } from '../../../uem/adapter.js';
import { INTEGRATION_ID_RE } from '../../integrations/model.js';
import { ApiProblem, type IntegrationsService } from '../../integrations/service.js';
import { TENANT_RE, type IntegrationRecord } from '../../state.js';
import { query } from '../html.js';
import { BASE, type Flash } from '../layout.js';
import { editBody, fieldError, integrationPath, integrationsBody, removeBody, valuesOf, type EditValues, type GroupChoice, type NewForm } from '../pages/integrations.js';
import { bodyOf, many, num, one, userError, type ConsoleContext } from './context.js';

/** How long the edit page waits for the UEM's group list before showing the form without it. */
const GROUPS_WAIT_MS = 15_000;

/** `p`, or a rejection with `what` once `ms` have passed on `clock`. */
function within<T>(p: Promise<T>, ms: number, clock: Clock, what: string): Promise<T> {
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  p.catch(() => {});
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => reject(new Error(what)), ms);
  });
  return Promise.race([p, timeout]).finally(() => {
    if (timer !== undefined) clock.clearTimeout(timer);
  });
}

export function register(r: Router, ctx: ConsoleContext): void {
  const { deps, form, page, problemPage, guard, tenants, pickTenant, csrfOf, now } = ctx;
  const svc = deps.integrations;

  async function integrationsPage(req: Request, res: Response, status: number, extra: { tenant?: string; verify?: { id: string; result: Awaited<ReturnType<IntegrationsService['verify']>> }; newForm?: NewForm; flash?: Flash } = {}): Promise<void> {
    const all = await tenants();
    const tenant = extra.tenant ?? pickTenant(req.query.tenant, all);
    const list = tenant ? await svc.list(tenant) : [];
    const counts = new Map(list.map((i) => [i.id, deps.inventory.countDevices(i.id)]));
    let flash = extra.flash;
    const done = req.query.done;
    if (!flash && typeof done === 'string') {
      const name = list.find((i) => i.id === req.query.id)?.displayName ?? 'The integration';
      const texts: Record<string, string> = {
        synced: `Sync started for ${name}: a device sync, then an app sync. Reload this page to follow it.`,
        paused: `${name} is paused: no scheduled device or app syncs until you resume it (Sync Now still runs one).`,
        resumed: `${name} resumed: a device sync starts now.`,
        saved: `Saved ${name}. The changes apply from the next run.`,
        removed: 'The integration was removed, with its inventory.',
      };
      if (texts[done]) flash = { kind: 'ok', text: texts[done]! };
    }
    page(res, status, {
      title: tenant ? `Integrations of ${tenant}` : 'Integrations',
      active: 'integrations',
      tenant,
      flash,
      body: integrationsBody({
        tenant,
        tenants: all,
        integrations: list,
        deviceCounts: counts,
        csrf: csrfOf(res),
        now: now(),
        ...(extra.verify ? { verify: extra.verify } : {}),
        ...(extra.newForm ? { newForm: extra.newForm } : {}),
      }),
    });
  }

  r.get('/integrations', async (req, res) => {
    await integrationsPage(req, res, 200);
  });

  r.post('/integrations/new', form, async (req, res) => {
    if (!guard(req, res)) return;
    const b = bodyOf(req);
    const tenant = one(b.tenant);
    if (!TENANT_RE.test(tenant)) return problemPage(res, 400, 'Unknown tenant', 'Choose a tenant first.', `${BASE}/integrations`);
    const f: NewForm = { vendor: one(b.vendor), displayName: one(b.displayName), group: one(b.group).trim(), target: one(b.target).trim() };
    try {
      const rec = await svc.create(tenant, { vendor: f.vendor, displayName: f.displayName, route: { via: 'connector', group: f.group, target: f.target } });
      res.redirect(303, `${integrationPath(rec, 'edit')}?created=1`);
    } catch (e) {
      const u = userError(e);
      if (!u) throw e;
      await integrationsPage(req, res, u.status, { tenant, newForm: { ...f, error: `Not added. ${u.message}` } });
    }
  });

  /** The integration named by the path, or a 404 page (undefined). */
  async function integrationOf(req: Request, res: Response): Promise<IntegrationRecord | undefined> {
    const tenant = String(req.params.tenant);
    const id = String(req.params.id);
    if (TENANT_RE.test(tenant) && INTEGRATION_ID_RE.test(id)) {
      try {
        return await svc.get(tenant, id);
      } catch (e) {
        if (!(e instanceof ApiProblem && e.status === 404)) throw e;
      }
    }
    problemPage(res, 404, 'Unknown integration', `Tenant ${tenant} has no integration ${id}.`, `${BASE}/integrations${query({ tenant: TENANT_RE.test(tenant) ? tenant : undefined })}`);
    return undefined;
  }

  const back = (rec: IntegrationRecord, done: string): string => `${BASE}/integrations${query({ tenant: rec.tenant, done, id: rec.id })}#${rec.id}`;

  r.post('/integrations/:tenant/:id/sync', form, async (req, res) => {
    if (!guard(req, res)) return;
    const rec = await integrationOf(req, res);
    if (!rec) return;
    await svc.syncNow(rec.tenant, rec.id);
    deps.logger.info('console: sync now', { integration: rec.id, tenant: rec.tenant });
    res.redirect(303, back(rec, 'synced'));
  });

  for (const [action, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    r.post(`/integrations/:tenant/:id/${action}`, form, async (req, res) => {
      if (!guard(req, res)) return;
      const rec = await integrationOf(req, res);
      if (!rec) return;
      await svc.setPaused(rec.tenant, rec.id, paused);
      deps.logger.info(`console: integration ${paused ? 'paused' : 'resumed'}`, { integration: rec.id, tenant: rec.tenant });
      res.redirect(303, back(rec, paused ? 'paused' : 'resumed'));
    });
  }

  r.post('/integrations/:tenant/:id/verify', form, async (req, res) => {
    if (!guard(req, res)) return;
    const rec = await integrationOf(req, res);
    if (!rec) return;
    const result = await svc.verify(rec.tenant, rec.id);
    // Said at the top too: the result renders by its integration, maybe far down the page.
    const flash: Flash = result.ok ? { kind: 'ok', text: `Verification of ${rec.displayName} passed: see its steps below.` } : { kind: 'error', text: `Verification of ${rec.displayName} failed: see its steps below.` };
    await integrationsPage(req, res, 200, { tenant: rec.tenant, verify: { id: rec.id, result }, flash });
  });

  /** The UEM's groups for the edit form, or why they cannot be listed now. */
  async function groupChoice(rec: IntegrationRecord): Promise<GroupChoice> {
    try {
      const list = await within(svc.groups(rec.tenant, rec.id), GROUPS_WAIT_MS, deps.clock, `the UEM did not answer within ${GROUPS_WAIT_MS / 1000} s`);
      return { listed: true, list };
    } catch (e) {
      return { listed: false, why: redactString(messageOf(e).replace(/^cannot list the UEM's groups: /, '')) };
    }
  }

  r.get('/integrations/:tenant/:id/edit', async (req, res) => {
    const rec = await integrationOf(req, res);
    if (!rec) return;
    const groups = await groupChoice(rec);
    const flash: Flash | undefined = req.query.created === '1' ? { kind: 'ok', text: `Integration ${rec.displayName} added. Choose the groups to sync and save.` } : undefined;
    page(res, 200, {
      title: `Edit ${rec.displayName}`,
      active: 'integrations',
      tenant: rec.tenant,
      flash,
      body: editBody({ rec, values: valuesOf(rec), groups, csrf: csrfOf(res), now: now() }),
    });
  });

  r.post('/integrations/:tenant/:id/edit', form, async (req, res) => {
    if (!guard(req, res)) return;
    const rec = await integrationOf(req, res);
    if (!rec) return;
    const b = bodyOf(req);
    const listed = b.groupsListed === '1';
    const values: EditValues = {
      displayName: one(b.displayName),
      // Groups the form could not list are left as they are.
      groups: listed ? many(b.groups) : [...rec.sync.groups],
      pii: { deviceName: b.pii_deviceName === 'on', deviceNumber: b.pii_deviceNumber === 'on', email: b.pii_email === 'on' },
      deviceSync: one(b.deviceSyncIntervalMinutes),
      appSync: one(b.appSyncIntervalMinutes),
      delThreshold: one(b.deviceDeletionThresholdPercent),
      delAfter: one(b.deviceDeletionAfterSyncs),
      tagging: { deviceStatus: b.tag_deviceStatus === 'on', deviceRisk: b.tag_deviceRisk === 'on', threatFactors: b.tag_threatFactors === 'on' },
      prefix: one(b.prefix).trim(),
    };
    const update = {
      displayName: values.displayName,
      sync: {
        ...(listed ? { groups: values.groups } : {}),
        pii: values.pii,
        deviceSyncIntervalMinutes: num(values.deviceSync),
        appSyncIntervalMinutes: num(values.appSync),
        deviceDeletionThresholdPercent: num(values.delThreshold),
        deviceDeletionAfterSyncs: num(values.delAfter),
      },
      tagging: { ...values.tagging, prefix: values.prefix },
    };
    try {
      // The revision the form was drawn from: an edit saved by someone else since is not overwritten unseen.
      const revision = one(b.revision);
      const saved = await svc.update(rec.tenant, rec.id, update, revision ? { ifMatch: revision } : {});
      deps.logger.info('console: integration edited', { integration: rec.id, tenant: rec.tenant });
      res.redirect(303, back(saved, 'saved'));
    } catch (e) {
      const u = userError(e);
      if (!u) throw e;
      const current = (await svc.get(rec.tenant, rec.id).catch(() => undefined)) ?? rec;
      const groups: GroupChoice = listed ? { listed: true, list: current.groupsCache as UemGroup[] } : await groupChoice(current);
      // The form is drawn again from `current`, so its revision is now theirs: a second Save replaces their edit knowingly.
      const error =
        e instanceof ApiProblem && e.apiCode === 'precondition_failed'
          ? { id: undefined, label: undefined, text: `Someone else saved this integration (at ${current.updatedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}) after this page was opened. Your changes are below: Save again to replace theirs, or open the integration to see them.` }
          : fieldError(u.message);
      page(res, u.status === 412 ? 409 : u.status, {
        title: `Edit ${rec.displayName}`,
        active: 'integrations',
        tenant: rec.tenant,
        body: editBody({ rec: current, values, groups, error, csrf: csrfOf(res), now: now() }),
      });
    }
  });

  r.get('/integrations/:tenant/:id/remove', async (req, res) => {
    const rec = await integrationOf(req, res);
    if (!rec) return;
    page(res, 200, { title: `Remove ${rec.displayName}`, active: 'integrations', tenant: rec.tenant, body: removeBody(rec, deps.inventory.countDevices(rec.id), csrfOf(res)) });
  });

  r.post('/integrations/:tenant/:id/remove', form, async (req, res) => {
    if (!guard(req, res)) return;
    const rec = await integrationOf(req, res);
    if (!rec) return;
    if (bodyOf(req).confirm !== 'yes') return res.redirect(303, integrationPath(rec, 'remove'));
    await svc.remove(rec.tenant, rec.id);
    deps.logger.warn('console: integration removed', { integration: rec.id, tenant: rec.tenant });
    res.redirect(303, `${BASE}/integrations${query({ tenant: rec.tenant, done: 'removed' })}`);
  });
}
