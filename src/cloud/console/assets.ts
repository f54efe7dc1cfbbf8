/**
 * The console's only assets, served by the cloud itself (CSP `default-src 'self'`: no CDN, no
 * inline script or style). Colours meet WCAG AA contrast on their backgrounds; every state is also
 * said in words. Tables turn into one card per row on a phone.
 */
export const CONSOLE_CSS = `
:root { --fg:#1b1f24; --muted:#57606a; --bg:#fff; --soft:#f6f8fa; --line:#d0d7de; --good:#116329; --bad:#a40e26; --warn:#7d4e00; --gray:#57606a; --accent:#0a4fb3; }
* { box-sizing:border-box; }
body { margin:0; font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
a { color:var(--accent); }
header.top { display:flex; flex-wrap:wrap; align-items:center; gap:.5rem 1rem; padding:.75rem 1.25rem; border-bottom:1px solid var(--line); }
.brand { margin:0; font-weight:700; font-size:1.1rem; }
.badge { margin:0; padding:.15rem .7rem; border-radius:1rem; border:2px solid currentColor; font-weight:600; font-size:.9rem; color:var(--good); }
.badge.off { color:var(--muted); }
nav.main { display:flex; flex-wrap:wrap; gap:.25rem 1rem; flex:1 1 auto; }
nav.main a { padding:.25rem 0; text-decoration:none; font-weight:600; }
nav.main a[aria-current="page"] { text-decoration:underline; text-underline-offset:.3em; text-decoration-thickness:2px; color:var(--fg); }
header.top form { margin:0; }
main { max-width:80rem; margin:0 auto; padding:1rem 1.25rem 2rem; display:grid; gap:1rem; }
h1 { font-size:1.4rem; margin:.25rem 0 0; }
h2 { font-size:1.15rem; margin:0 0 .5rem; }
h3 { font-size:1rem; margin:0 0 .25rem; }
section.card, article.card { border:1px solid var(--line); border-radius:.5rem; padding:1rem; min-width:0; }
p { margin:.25rem 0; }
.muted { color:var(--muted); }
.good { color:var(--good); } .bad { color:var(--bad); } .warn { color:var(--warn); }
.flash { margin:0; padding:.75rem 1rem; border-radius:.5rem; border:1px solid; overflow-wrap:anywhere; }
.flash.ok { color:var(--good); background:#eef8f0; } .flash.error { color:var(--bad); background:#fdf0f1; } .flash.warn { color:var(--warn); background:#fff8e6; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:.2rem 1rem; margin:.25rem 0 .75rem; }
dt { color:var(--muted); }
dd { margin:0; overflow-wrap:anywhere; min-width:0; }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.9em; overflow-wrap:anywhere; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:.925rem; }
caption { text-align:left; color:var(--muted); padding:.25rem 0; }
th, td { text-align:left; vertical-align:top; padding:.4rem .5rem; border-bottom:1px solid var(--line); }
td.wrap, th.wrap { overflow-wrap:break-word; }
table .mono, table code { word-break:break-all; }
table.devices tbody th { min-width:13rem; } table.apps tbody th { min-width:12rem; }
td[data-label="Risk"], td[data-label="State"] { white-space:nowrap; }
td.num, th.num { text-align:right; white-space:nowrap; }
form { margin:0; }
form.stack { display:grid; gap:.75rem; max-width:40rem; }
.field-block { display:grid; gap:.2rem; }
form.row { display:flex; flex-wrap:wrap; align-items:flex-end; gap:.5rem 1rem; }
form.row .field { display:grid; gap:.2rem; min-width:min(100%,12rem); flex:1 1 12rem; }
form.inline { display:inline; }
label, legend { font-weight:600; }
[hidden] { display:none !important; }
label.check { font-weight:400; display:flex; gap:.5rem; align-items:flex-start; }
label.check input { margin-top:.3rem; flex:none; width:auto; }
fieldset { border:1px solid var(--line); border-radius:.35rem; padding:.5rem .75rem .75rem; margin:.25rem 0; min-width:0; }
fieldset.invalid { border-color:var(--bad); }
input, select, textarea { font:inherit; padding:.4rem .5rem; border:1px solid #6e7781; border-radius:.35rem; width:100%; max-width:100%; background:var(--bg); color:var(--fg); }
input[aria-invalid="true"] { border:2px solid var(--bad); }
textarea.token { font-family:ui-monospace,monospace; font-size:.9rem; word-break:break-all; resize:vertical; }
.hint { color:var(--muted); font-size:.9rem; margin:0; }
.field-error { color:var(--bad); font-weight:600; margin:0; }
button, a.button { font:inherit; font-weight:600; display:inline-block; padding:.45rem 1rem; border:0; border-radius:.35rem; background:var(--accent); color:#fff; cursor:pointer; text-decoration:none; line-height:1.5; }
button.secondary, a.button.secondary { background:var(--bg); color:var(--accent); box-shadow:inset 0 0 0 2px var(--accent); }
button.danger, a.button.danger { background:var(--bad); color:#fff; }
button.link { background:none; color:var(--accent); padding:.25rem 0; text-decoration:underline; }
.actions { display:flex; flex-wrap:wrap; gap:.5rem; align-items:center; margin-top:.75rem; }
button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible, a:focus-visible { outline:3px solid #e36209; outline-offset:2px; }
.state { font-weight:600; white-space:nowrap; }
.state-connected { color:var(--good); } .state-offline { color:var(--warn); } .state-revoked { color:var(--bad); }
ul.status { list-style:none; margin:.5rem 0 0; padding:0; display:grid; gap:.5rem; grid-template-columns:repeat(auto-fit,minmax(min(100%,15rem),1fr)); }
ul.status > li { border:1px solid var(--line); border-left:.4rem solid var(--gray); border-radius:.35rem; padding:.5rem .75rem; background:var(--soft); min-width:0; overflow-wrap:anywhere; }
ul.status > li.ind-green { border-left-color:var(--good); } ul.status > li.ind-red { border-left-color:var(--bad); }
.ind { font-weight:700; }
.ind-green .ind { color:var(--good); } .ind-red .ind { color:var(--bad); } .ind-gray .ind { color:var(--gray); }
.comp { display:block; font-weight:700; }
.times, .counts { font-size:.9rem; color:var(--muted); margin:.15rem 0 0; }
ol.steps { margin:.5rem 0; padding-left:1.25rem; }
ol.steps li { margin:.2rem 0; overflow-wrap:anywhere; }
.groups label.check.depth-1 { padding-left:1.25rem; } .groups label.check.depth-2 { padding-left:2.5rem; } .groups label.check.depth-3 { padding-left:3.75rem; } .groups label.check.depth-4 { padding-left:5rem; } .groups label.check.depth-5 { padding-left:6.25rem; }
.groups { display:grid; gap:.15rem; max-height:24rem; overflow-y:auto; }
nav.pages { display:flex; flex-wrap:wrap; gap:.5rem 1rem; align-items:center; }
.grid2 { display:grid; gap:1rem; grid-template-columns:repeat(auto-fit,minmax(min(100%,24rem),1fr)); }
.sr { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
.js-only { display:none !important; } .js .js-only { display:inline-block !important; }
footer { max-width:80rem; margin:0 auto; padding:0 1.25rem 1.5rem; color:var(--muted); font-size:.9rem; }
@media (max-width:40rem) {
  main { padding:.75rem; }
  header.top { padding:.75rem; }
  dl { grid-template-columns:1fr; } dt { margin-top:.35rem; }
  /* One card per row: no sideways scrolling to reach the last column. */
  table.cards, .cards tbody, .cards tr, .cards th, .cards td { display:block; }
  .cards caption { display:block; }
  table.cards tbody th { min-width:0; }
  .cards thead { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
  .cards tr { padding:.5rem 0; border-bottom:1px solid var(--line); }
  .cards th, .cards td { border:0; padding:.1rem 0; text-align:left; white-space:normal; overflow-wrap:anywhere; }
  .cards td::before { content:attr(data-label); content:attr(data-label) / ""; display:block; color:var(--muted); font-size:.85rem; }
  .cards td:empty { display:none; }
}
`;

/**
 * Progressive enhancement only: the copy button next to a new pairing token (without JavaScript
 * the token sits in a read-only field to select and copy), selecting that field on focus, the
 * filter of a long group list, and focus on a refused form's first error.
 */
export const CONSOLE_JS = `
document.documentElement.classList.add('js');
document.addEventListener('click', function (e) {
  var b = e.target && e.target.closest ? e.target.closest('button[data-copy]') : null;
  if (!b) return;
  var field = document.getElementById(b.getAttribute('data-copy'));
  var out = document.getElementById(b.getAttribute('data-copy') + '-copied');
  if (!field) return;
  field.focus();
  field.select();
  var done = function (ok) { if (out) out.textContent = ok ? 'Copied to the clipboard.' : 'Select the text and copy it.'; };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(document.execCommand('copy')); });
  else done(document.execCommand('copy'));
});
document.addEventListener('focusin', function (e) {
  if (e.target && e.target.matches && e.target.matches('textarea.token')) e.target.select();
});
// The groups of a UEM with thousands of them: shown as the filter matches (name or id, any case);
// selected ones stay shown, and how many are shown is said.
document.addEventListener('DOMContentLoaded', function () {
  var f = document.querySelector('input[data-filter]');
  if (!f) return;
  var set = document.getElementById(f.getAttribute('data-filter'));
  var out = document.getElementById(f.getAttribute('aria-describedby'));
  var labels = set ? set.querySelectorAll('.groups label.check') : [];
  f.closest('.group-filter').hidden = false;
  var apply = function () {
    var q = f.value.trim().toLowerCase();
    var shown = 0;
    for (var i = 0; i < labels.length; i++) {
      var l = labels[i];
      var on = q === '' || l.querySelector('input').checked || l.textContent.toLowerCase().indexOf(q) >= 0;
      l.hidden = !on;
      if (on) shown++;
    }
    if (out) out.textContent = q === '' ? '' : shown + ' of ' + labels.length + ' groups shown (selected ones always)';
  };
  f.addEventListener('input', apply);
  // Enter in the filter must not send the form.
  f.addEventListener('keydown', function (e) { if (e.key === 'Enter') e.preventDefault(); });
});
// A refused form comes back as a new page, where a role="alert" is not reliably announced: the
// focus goes to the first field marked invalid (read with its error), else to the error itself.
document.addEventListener('DOMContentLoaded', function () {
  var target = document.querySelector('main [aria-invalid="true"]') || document.querySelector('main .flash.error');
  if (target) target.focus();
});
`;
