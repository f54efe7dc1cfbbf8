/** The connectors page: the list, pairing tokens, and revoking a connector. */
import type { Request, Response, Router } from 'express';
import { connectorView, revokeConnector } from '../../admin-api.js';
import type { PairingService } from '../../pairing.js';
import { CONNECTOR_ID_RE, TENANT_RE } from '../../state.js';
import { query } from '../html.js';
import { BASE, type Flash } from '../layout.js';
import { connectorsBody, revokeBody, type TokenForm } from '../pages/connectors.js';
import { bodyOf, num, one, pageParam, searchParam, sessionOf, userError, type ConsoleContext } from './context.js';

type IssuedToken = Awaited<ReturnType<PairingService['createToken']>>;

export function register(r: Router, ctx: ConsoleContext): void {
  const { deps, form, page, problemPage, guard, tenants, csrfOf, now } = ctx;

  async function connectorsPage(req: Request, res: Response, status: number, extra: { issued?: IssuedToken; issuedAgain?: boolean; form?: TokenForm; flash?: Flash } = {}): Promise<void> {
    const s = await deps.store.read();
    const list = Object.values(s.connectors).map((c) => connectorView(c, deps));
    const st = req.query.state;
    const all = await tenants();
    const t = req.query.tenant;
    const filter = typeof t === 'string' && TENANT_RE.test(t) ? t : undefined;
    let flash = extra.flash;
    const id = req.query.id;
    if (!flash && req.query.done === 'revoked' && typeof id === 'string' && CONNECTOR_ID_RE.test(id)) flash = { kind: 'ok', text: `Connector ${id} revoked: it was disconnected and cannot connect again.` };
    page(res, status, {
      title: 'Connectors',
      active: 'connectors',
      tenant: filter ?? extra.issued?.tenant,
      flash,
      body: connectorsBody({
        connectors: list,
        tenants: all,
        filter,
        search: searchParam(req.query.search),
        state: st === 'connected' || st === 'offline' || st === 'revoked' ? st : undefined,
        page: pageParam(req.query.page),
        csrf: csrfOf(res),
        now: now(),
        ...(extra.issued ? { issued: extra.issued } : {}),
        ...(extra.issuedAgain ? { issuedAgain: true } : {}),
        ...(extra.form ? { form: extra.form } : {}),
      }),
    });
  }

  r.get('/connectors', async (req, res) => {
    await connectorsPage(req, res, 200);
  });

  r.post('/connectors/pairing-token', form, async (req, res) => {
    if (!guard(req, res)) return;
    const b = bodyOf(req);
    const f: TokenForm = { tenant: one(b.tenant).trim(), group: one(b.group).trim() || 'default', ttl: one(b.ttlSeconds) };
    const session = sessionOf(res);
    const once = one(b.once).slice(0, 64);
    const t0 = now();
    for (const [k, v] of session.issued ?? []) if (t0 - v.at > 10 * 60_000) session.issued!.delete(k);
    const earlier = once ? session.issued?.get(once) : undefined;
    if (earlier) {
      // The same form again (a reload of this answer): its token, not a second live one.
      await connectorsPage(req, res, 201, { issued: earlier.token, issuedAgain: true });
      return;
    }
    try {
      const issued = await deps.pairing.createToken({ tenant: f.tenant, group: f.group, ttlSeconds: num(f.ttl) });
      deps.logger.info('pairing token issued', { tenant: issued.tenant, group: issued.group, expiresAt: issued.expiresAt, via: 'console' });
      if (once) (session.issued ??= new Map()).set(once, { at: t0, token: issued });
      // Shown on this answer only: never in a URL or the state; `no-store` keeps it out of caches.
      await connectorsPage(req, res, 201, { issued });
    } catch (e) {
      const u = userError(e);
      if (!u) throw e;
      await connectorsPage(req, res, u.status, { form: { ...f, error: `Not created. ${u.message}` } });
    }
  });

  r.get('/connectors/:id/revoke', async (req, res) => {
    const id = String(req.params.id);
    const rec = CONNECTOR_ID_RE.test(id) ? (await deps.store.read()).connectors[id] : undefined;
    if (!rec) return problemPage(res, 404, 'Unknown connector', `There is no connector ${id}.`);
    page(res, 200, { title: `Revoke ${id}`, active: 'connectors', tenant: rec.tenant, body: revokeBody(connectorView(rec, deps), csrfOf(res), now(), req.query.filtered === '1') });
  });

  r.post('/connectors/:id/revoke', form, async (req, res) => {
    if (!guard(req, res)) return;
    const id = String(req.params.id);
    if (bodyOf(req).confirm !== 'yes') return res.redirect(303, `${BASE}/connectors/${encodeURIComponent(id)}/revoke`);
    const tenant = CONNECTOR_ID_RE.test(id) ? (await deps.store.read()).connectors[id]?.tenant : undefined;
    const done = await revokeConnector(deps, id, 'console');
    if (!done) return problemPage(res, 404, 'Unknown connector', `There is no connector ${id}.`);
    // Back to the list the admin came from: the tenant's, when it was filtered.
    const filtered = bodyOf(req).filtered === '1';
    res.redirect(303, `${BASE}/connectors${query({ tenant: filtered ? tenant : undefined, done: 'revoked', id })}`);
  });
}
