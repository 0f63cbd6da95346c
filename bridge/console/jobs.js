// Jobs: submit, follow progress (GET /v1/jobs/{id}), cancel, and download
// the results (GET /v1/jobs/{id}/results, JSON lines) as a file.
import { api, getJSON, sendJSON, describe } from './api.js';
import { $, h, table, showError, fmt } from './dom.js';

const STORE = 'simmatch.jobs';
const jobs = new Map(); // id -> status, or {id, error}
const links = new Map(); // id -> {url, lines, bytes}
let timer = null;

const terminal = (s) => ['done', 'failed', 'cancelled'].includes(s);
const save = () => sessionStorage.setItem(STORE, JSON.stringify([...jobs.keys()]));
const lines = (id) => $(`#job-${CSS.escape(id)}`);

async function refresh() {
  const view = $('#view-jobs');
  for (const [id, st] of jobs) {
    if (st.state && terminal(st.state)) continue;
    try {
      jobs.set(id, await getJSON(`/v1/jobs/${encodeURIComponent(id)}`));
    } catch (e) {
      if (e.status === 404) jobs.set(id, { id, state: 'gone', error: describe(e) });
      else showError($('.error', view), describe(e));
    }
  }
  render();
}

async function download(id) {
  const view = $('#view-jobs');
  try {
    const blob = await (await api('GET', `/v1/jobs/${encodeURIComponent(id)}/results`, undefined, 'application/x-ndjson')).blob();
    const text = await blob.text();
    const old = links.get(id);
    if (old) URL.revokeObjectURL(old.url);
    links.set(id, { url: URL.createObjectURL(blob), lines: text.split('\n').filter(Boolean).length, bytes: blob.size });
    render();
    lines(id)?.querySelector('a[download]')?.click();
  } catch (e) {
    showError($('.error', view), describe(e));
  }
}

async function cancel(id) {
  try {
    jobs.set(id, await sendJSON('DELETE', `/v1/jobs/${encodeURIComponent(id)}`));
  } catch (e) {
    showError($('.error', $('#view-jobs')), describe(e));
  }
  render();
}

function render() {
  table($('#jobs-table'), ['job', 'state', 'progress', 'created', 'results'], [...jobs.values()].reverse().map((j) => {
    const link = links.get(j.id);
    const actions = [];
    if (j.state === 'done') {
      actions.push(h('button', { type: 'button', onclick: () => download(j.id) }, 'Download results'));
      if (link) actions.push(' ', h('a', { href: link.url, download: `job-${j.id}.jsonl` }, `job-${j.id}.jsonl (${link.lines} lines, ${fmt.bytes(link.bytes)})`));
    } else if (j.state === 'queued' || j.state === 'running') {
      actions.push(h('button', { type: 'button', onclick: () => cancel(j.id) }, 'Cancel'));
    } else if (j.error) actions.push(h('span', { class: 'muted' }, j.error));
    return h('tr', { id: 'job-' + j.id, dataset: { state: j.state || '' } },
      h('td', { class: 'id' }, j.id),
      h('td', { class: 'state-' + (j.state || '') }, j.state || '…'),
      h('td', {}, h('progress', { max: j.total || 1, value: j.done || 0 }), ` ${fmt.int(j.done)} / ${fmt.int(j.total)}`),
      h('td', {}, j.created ? new Date(j.created).toLocaleTimeString() : ''),
      h('td', {}, actions));
  }));
}

function track(id) {
  if (!id || jobs.has(id)) return;
  jobs.set(id, { id });
  save();
  refresh();
}

const textLines = (sel) => $(sel).value.split('\n').map((s) => s.trim()).filter(Boolean);

async function submit(ev) {
  ev.preventDefault();
  const view = $('#view-jobs');
  const body = { query: textLines('#job-queries'), product_descriptions: textLines('#job-descriptions') };
  const k = parseInt($('#job-topk').value, 10);
  if (k) body.top_k = k;
  try {
    const st = await sendJSON('POST', '/v1/jobs', body);
    showError($('.error', view), null);
    jobs.set(st.id, st);
    save();
    render();
  } catch (e) {
    showError($('.error', view), describe(e));
  }
}

export default {
  init() {
    for (const id of JSON.parse(sessionStorage.getItem(STORE) || '[]')) jobs.set(id, { id });
    $('#job-form').addEventListener('submit', submit);
    $('#job-track').addEventListener('click', () => { track($('#job-track-id').value.trim()); $('#job-track-id').value = ''; });
  },
  enter() {
    render();
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, 1000);
  },
  leave() { clearInterval(timer); timer = null; },
};
