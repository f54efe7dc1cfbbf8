/**
 * The page's only assets, served by the connector itself (no CDN: the network may be offline).
 * Colours meet WCAG AA contrast on white; state is always said in words, not only in colour.
 */
export const PAGE_CSS = `
:root { --fg:#1b1f24; --muted:#57606a; --bg:#fff; --line:#d0d7de; --good:#116329; --bad:#a40e26; --warn:#7d4e00; --accent:#0a4fb3; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; flex-wrap:wrap; align-items:center; justify-content:space-between; gap:.5rem; padding:1rem 1.25rem; border-bottom:1px solid var(--line); }
h1 { font-size:1.25rem; margin:0; }
h2 { font-size:1.1rem; margin:0 0 .5rem; }
main { max-width:72rem; margin:0 auto; padding:1rem 1.25rem; display:grid; gap:1rem; grid-template-columns:repeat(auto-fit,minmax(min(100%,22rem),1fr)); }
section { border:1px solid var(--line); border-radius:.5rem; padding:1rem; min-width:0; }
section[aria-labelledby="h-targets"], section[aria-labelledby="h-problems"], section[aria-labelledby="h-diag"], section[aria-labelledby="h-managed"], section[aria-labelledby="h-pair"], .flash { grid-column:1/-1; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:.25rem 1rem; margin:0; }
dt { color:var(--muted); }
dd { margin:0; overflow-wrap:anywhere; }
dt.wide, dd.wide { grid-column:1/-1; } dt.wide { margin-top:.25rem; }
.badge { margin:0; padding:.25rem .75rem; border-radius:1rem; font-weight:600; border:2px solid currentColor; }
.state-connected { color:var(--good); } .state-connecting, .state-disconnected { color:var(--warn); } .state-refused, .state-unpaired, .state-stopped { color:var(--bad); }
.good { color:var(--good); } .bad { color:var(--bad); } .warn { color:var(--warn); } .muted { color:var(--muted); }
.flash { margin:0; padding:.75rem 1rem; border-radius:.5rem; border:1px solid; }
.flash.ok { color:var(--good); background:#eef8f0; } .flash.error { color:var(--bad); background:#fdf0f1; } .flash.warn { color:var(--warn); background:#fff8e6; }
.field-error { color:var(--bad); font-weight:600; margin:0; } input[aria-invalid="true"] { box-shadow:0 0 0 2px var(--bad); }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; vertical-align:top; padding:.4rem .5rem; border-bottom:1px solid var(--line); }
td.wrap { overflow-wrap:anywhere; max-width:20rem; }
td[data-label="Reachable"], td[data-label="Latency"] { white-space:nowrap; }
form { display:grid; gap:.4rem; margin-top:.5rem; }
label { font-weight:600; }
input, textarea { font:inherit; padding:.4rem .5rem; border:1px solid #8c959f; border-radius:.35rem; width:100%; }
textarea { font-family:ui-monospace,monospace; font-size:.9rem; }
button { font:inherit; font-weight:600; padding:.45rem 1rem; border:0; border-radius:.35rem; background:var(--accent); color:#fff; cursor:pointer; justify-self:start; }
button:focus-visible, input:focus-visible, textarea:focus-visible, a:focus-visible, summary:focus-visible { outline:3px solid #e36209; outline-offset:2px; }
code { font-family:ui-monospace,monospace; font-size:.9em; overflow-wrap:anywhere; }
.tag { display:inline-block; font-size:.8rem; font-weight:700; padding:0 .4rem; border-radius:.25rem; border:1px solid currentColor; }
.tag.pass, .tag.accepted { color:var(--good); } .tag.fail, .tag.error, .tag.refused { color:var(--bad); } .tag.warn, .tag.pending { color:var(--warn); } .tag.skip { color:var(--muted); }
ol.checks, ol.problems { padding-left:1.25rem; } ol.checks li { margin-bottom:.5rem; }
ul.managed { list-style:none; margin:0; padding:0; } ul.managed > li { padding:.5rem 0; border-top:1px solid var(--line); }
ul.managed p { margin:0 0 .25rem; } ul.managed form { max-width:24rem; } .url { overflow-wrap:anywhere; }
.buttons { display:flex; flex-wrap:wrap; gap:.5rem; }
button.secondary { background:var(--bg); color:var(--accent); box-shadow:inset 0 0 0 2px var(--accent); }
.sr { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
footer { max-width:72rem; margin:0 auto; padding:0 1.25rem 1.5rem; color:var(--muted); font-size:.9rem; }
.js-only { display:none; } .js .js-only { display:inline; }
@media (max-width:40rem) {
  dl { grid-template-columns:1fr; } dt { margin-top:.4rem; }
  /* The targets table becomes one card per target: no sideways scrolling to reach TLS or Problem. */
  table.targets, .targets tbody, .targets tr, .targets th, .targets td { display:block; }
  .targets thead { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
  .targets tr { padding:.5rem 0; border-bottom:1px solid var(--line); }
  .targets th, .targets td { border:0; padding:.15rem 0; }
  .targets td.wrap { max-width:none; }
  .targets td::before { content:attr(data-label); content:attr(data-label) / ""; display:block; color:var(--muted); font-size:.875rem; }
  .targets td:empty { display:none; }
}
`;

/** Refreshes the page every 10 s, unless paused, scrolled, someone is typing, a form is half filled, or something has the focus. */
export const PAGE_JS = `
document.documentElement.classList.add('js');
// A pairing refused (a mistyped password) must not cost the pasted pairing string, which the
// console shows only once. The server never sends it back; this tab keeps it until a pairing
// succeeds (an answer without an error), in sessionStorage (this tab only, gone when it closes).
(function () {
  var KEY = 'uemlink-pairing-string';
  var boxes = document.querySelectorAll('textarea[name=token]');
  try {
    var kept = sessionStorage.getItem(KEY);
    if (kept && document.querySelector('.flash.error')) Array.prototype.forEach.call(boxes, function (b) { if (!b.value) b.value = kept; });
    else sessionStorage.removeItem(KEY);
    Array.prototype.forEach.call(boxes, function (b) {
      b.form.addEventListener('submit', function () { if (b.value) sessionStorage.setItem(KEY, b.value); });
    });
  } catch (e) { /* storage unavailable: nothing kept */ }
})();
// A refused form comes back as a new page: the focus goes to the field marked invalid (read with
// its error), else to the error at the top.
(function () {
  var target = document.querySelector('main [aria-invalid="true"]') || document.querySelector('main .flash.error');
  if (target) target.focus();
})();
// "Pause auto-refresh" (WCAG 2.2.2): kept for this tab across the page's own reloads.
var PAUSE = 'uemlink-refresh-paused';
var paused = false;
try { paused = sessionStorage.getItem(PAUSE) === '1'; } catch (e) { /* storage unavailable */ }
var toggle = document.getElementById('refresh-toggle');
if (toggle) {
  toggle.setAttribute('aria-pressed', String(paused));
  toggle.addEventListener('click', function () {
    paused = !paused;
    toggle.setAttribute('aria-pressed', String(paused));
    try { if (paused) sessionStorage.setItem(PAUSE, '1'); else sessionStorage.removeItem(PAUSE); } catch (e) { /* kept for this page only */ }
  });
}
setInterval(function () {
  // Someone reading further down (scrolled, or a screen reader's browse mode there) would be
  // thrown back to the top.
  if (paused || window.scrollY > 0) return;
  var busy = Array.prototype.some.call(document.querySelectorAll('input:not([type=hidden]), textarea'), function (el) { return el.value !== ''; });
  // Anything focused (a link a keyboard user rests on, a field) or selected: a reload would take it away.
  var focused = document.activeElement && document.activeElement !== document.body && document.activeElement !== document.documentElement;
  var selected = String(window.getSelection ? window.getSelection() : '') !== '';
  var open = document.querySelector('details[open]');
  if (!busy && !focused && !selected && !open && document.visibilityState !== 'hidden' && location.pathname === '/') location.replace('/');
}, 10000);
`;
