/** The sign-in page: the admin token, posted once, for a session. */
import { html, type Html } from '../html.js';
import { BASE, csrfField } from '../layout.js';

/** `error`: what is wrong with the token entered, said at its field. */
export function loginBody(v: { csrf: string; next?: string | undefined; error?: string }): Html {
  const invalid = v.error ? html` aria-invalid="true" aria-describedby="token-error"` : html``;
  return html`<h1>Sign in</h1>
<section class="card" aria-labelledby="h-login"><h2 id="h-login">Cloud administrator</h2>
<p>Sign in with the cloud's admin token (<code>adminToken</code> or <code>adminTokenFile</code> in the cloud config). The session ends after 8 hours without use, or when you sign out.</p>
<form class="stack" method="post" action="${BASE}/login">${csrfField(v.csrf)}${v.next ? html`<input type="hidden" name="next" value="${v.next}">` : ''}
<label for="token">Admin token</label><input id="token" name="token" type="password" autocomplete="current-password" required spellcheck="false" autocapitalize="off"${invalid}>${v.error ? html`<p class="field-error" id="token-error">${v.error}</p>` : ''}
<button type="submit">Sign in</button></form></section>`;
}
