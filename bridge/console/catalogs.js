// Catalogs (GET /v1/catalogs) and search (POST /v1/catalogs/{c}/search):
// mode, explain, filters, facets, group_by.
import { getJSON, sendJSON, describe } from './api.js';
import { $, h, table, showError, fmt } from './dom.js';

const OPS = ['=', '$eq', '$ne', '$in', '$nin', '$gt', '$gte', '$lt', '$lte'];

export async function loadCatalogs() {
  const view = $('#view-catalogs');
  try {
    const { catalogs } = await getJSON('/v1/catalogs');
    showError($('.error', view), null);
    table($('#catalogs-table'), ['catalog', 'products', 'model', 'matrix', 'stored', 'matrix bytes', 'keyword index'],
      catalogs.length ? catalogs.map((c) => h('tr', { dataset: { catalog: c.name } },
        h('td', {}, h('a', { href: '#catalogs', onclick: () => pick(c.name) }, c.name)),
        h('td', { class: 'num products' }, fmt.int(c.products)),
        h('td', {}, `${c.model.name}@${c.model.version}`),
        h('td', {}, c.matrix || 'float32'),
        h('td', { class: 'num' }, fmt.bytes(c.stored_bytes)),
        h('td', { class: 'num' }, fmt.bytes(c.matrix_bytes)),
        h('td', { class: 'num' }, fmt.bytes(c.keyword_bytes))))
        : [[h('td', { colspan: 7, class: 'muted' }, 'no catalogs yet: import one')]]);
    const sel = $('#search-catalog');
    const was = sel.value;
    sel.replaceChildren(...catalogs.map((c) => h('option', { value: c.name }, c.name)));
    if (catalogs.some((c) => c.name === was)) sel.value = was;
    $('#catalogs-table').dataset.state = 'loaded';
    return catalogs;
  } catch (e) {
    $('#catalogs-table').replaceChildren();
    showError($('.error', view), describe(e));
    return [];
  }
}

function pick(name) {
  $('#search-catalog').value = name;
  $('#search-query').focus();
}

function addFilterRow() {
  const row = h('div', { class: 'row filter' },
    h('input', { class: 'f-key', placeholder: 'metadata key' }),
    h('select', { class: 'f-op' }, OPS.map((o) => h('option', { value: o }, o))),
    h('input', { class: 'f-value grow', placeholder: 'value ($in, $nin: comma-separated)' }),
    h('button', { type: 'button', onclick: () => row.remove(), title: 'remove' }, '×'));
  $('#filters').append(row);
  return row;
}

// filterFrom builds the filter object from the rows: a key with one "=" row
// is an exact match ("brand": "Bosch"), anything else an object of operators.
export function filterFrom(rows) {
  const by = new Map();
  for (const { key, op, value } of rows) {
    if (!key) continue;
    if (!by.has(key)) by.set(key, []);
    by.get(key).push([op, value]);
  }
  const filter = {};
  for (const [key, conds] of by) {
    if (conds.length === 1 && conds[0][0] === '=') { filter[key] = conds[0][1]; continue; }
    const obj = {};
    for (const [op, value] of conds) {
      const o = op === '=' ? '$eq' : op;
      if (o === '$in' || o === '$nin') obj[o] = value.split(',').map((s) => s.trim()).filter(Boolean);
      else if (['$gt', '$gte', '$lt', '$lte'].includes(o) && value.trim() !== '' && !Number.isNaN(Number(value))) obj[o] = Number(value);
      else obj[o] = value;
    }
    filter[key] = obj;
  }
  return filter;
}

function request() {
  const body = { query: $('#search-query').value, mode: $('#search-mode').value };
  const topK = parseInt($('#search-topk').value, 10);
  if (topK) body.top_k = topK;
  const th = $('#search-threshold').value.trim();
  if (th) body.threshold = Number(th);
  if ($('#search-explain').checked) body.explain = true;
  if ($('#search-count').checked) body.count = true;
  const facets = $('#search-facets').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (facets.length) body.facets = facets;
  const g = $('#search-groupby').value.trim();
  if (g) body.group_by = g;
  const filter = filterFrom([...document.querySelectorAll('#filters .filter')].map((r) => ({
    key: $('.f-key', r).value.trim(), op: $('.f-op', r).value, value: $('.f-value', r).value,
  })));
  if (Object.keys(filter).length) body.filter = filter;
  return body;
}

function rank(r) { return r === null || r === undefined ? '—' : '#' + r; }

function explainCell(x) {
  if (!x) return '';
  return h('td', { class: 'explain' },
    h('span', {}, `dense ${fmt.score(x.dense)} (${rank(x.dense_rank)})`), ' · ',
    h('span', {}, `keyword ${fmt.score(x.keyword)} (${rank(x.keyword_rank)})`));
}

function metaCell(md) {
  return h('td', { class: 'meta' }, Object.entries(md || {}).map(([k, v]) => h('span', { class: 'chip' }, `${k}: ${v}`)));
}

function render(body, resp) {
  const out = $('#search-results');
  const explain = !!body.explain, grouped = !!body.group_by;
  out.replaceChildren(...resp.results.map((res) => {
    const head = ['#', 'id', 'score', 'description', 'metadata'];
    if (explain) head.push('explanation');
    if (grouped) head.push('group size');
    const t = h('table', { class: 'grid matches' });
    table(t, head, res.matches.map((m, i) => {
      const cells = [h('td', { class: 'num' }, (body.offset || 0) + i + 1), h('td', { class: 'id' }, m.id),
        h('td', { class: 'num score' }, fmt.score(m.score)), h('td', { class: 'desc' }, m.description), metaCell(m.metadata)];
      if (explain) cells.push(explainCell(m.explain));
      if (grouped) cells.push(h('td', { class: 'num' }, m.group_size));
      return h('tr', {}, cells);
    }));
    const facets = Object.entries(res.facets || {}).map(([k, vals]) => h('div', { class: 'facet' }, h('b', {}, k + ': '),
      Object.entries(vals).map(([v, n]) => h('span', { class: 'chip' }, `${v} ${n}`))));
    return h('div', { class: 'result' },
      h('p', { class: 'summary' }, `“${res.query}”: ${res.matches.length} match${res.matches.length === 1 ? '' : 'es'}`,
        res.total !== undefined ? ` of ${res.total}` : '',
        ` · ${body.mode}`, body.mode === 'hybrid' ? ' (rrf)' : '',
        ` · ${resp.model.name}@${resp.model.version}`),
      facets, res.matches.length ? t : h('p', { class: 'muted' }, 'no matches'));
  }));
  out.dataset.state = 'done';
}

async function search(ev) {
  ev.preventDefault();
  const out = $('#search-results');
  out.dataset.state = 'busy';
  const body = request();
  const cat = $('#search-catalog').value;
  try {
    const resp = await sendJSON('POST', `/v1/catalogs/${encodeURIComponent(cat)}/search`, body);
    showError($('#search-error'), null);
    render(body, resp);
  } catch (e) {
    out.replaceChildren();
    out.dataset.state = 'error';
    showError($('#search-error'), describe(e));
  }
}

export default {
  init() {
    $('#catalogs-refresh').addEventListener('click', loadCatalogs);
    $('#filter-add').addEventListener('click', addFilterRow);
    $('#search-form').addEventListener('submit', search);
  },
  enter() { loadCatalogs(); },
};
