// Small DOM helpers. Text always goes in as text (never as HTML), so
// product descriptions and error messages cannot inject markup.

export const $ = (sel, root = document) => root.querySelector(sel);

// h builds an element: h('td', {class: 'num', title: 't'}, 'text', child).
// Attributes named on* are listeners; null/undefined/false children are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    // Through the CSSOM: the console's CSP refuses style attributes.
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// table fills tbl with a header row and one row per item of rows (arrays of cells).
export function table(tbl, head, rows) {
  tbl.replaceChildren(
    h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c))))))),
  );
}

// showError puts a readable message in the view's alert box (hides it for null).
export function showError(box, message) {
  if (!box) return;
  box.hidden = !message;
  box.textContent = message || '';
}

export const fmt = {
  score: (x) => (typeof x === 'number' ? x.toFixed(4) : '—'),
  bytes(n) {
    if (typeof n !== 'number' || n < 0) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  },
  int: (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '—'),
  ms: (s) => (Number.isFinite(s) ? (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms' : '—'),
  rate: (x) => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : '—'),
};
