// Processors and models (GET /v1/models, GET /v1/models/status) and the
// live traffic from /metrics.
import { api, getJSON, describe } from './api.js';
import { $, h, table, showError, fmt } from './dom.js';
import { parseProm, traffic, gauge } from './prom.js';

const POLL_MS = 2000;
let timer = null;
let prev = null;

async function loadModels() {
  const view = $('#view-models');
  try {
    const list = await getJSON('/v1/models');
    showError($('.error', view), null);
    table($('#models-table'), ['model', 'version', 'dimensions', 'processors', 'prompts'],
      list.data.map((m) => [m.id, m.version, m.dimensions, m.processors,
        Object.entries(m.prompts || {}).map(([k, v]) => `${k}: "${v}"`).join('; ') || '—']));
  } catch (e) {
    $('#models-table').replaceChildren();
    showError($('.error', view), describe(e));
  }
  try {
    const st = await getJSON('/v1/models/status');
    showError($('#processors-error'), null);
    $('#processors').replaceChildren(...st.processors.map((p) => {
      const t = h('table', { class: 'grid' });
      table(t, ['version', 'state', 'default', 'in flight', 'file', 'max batch tokens'],
        p.models.map((m) => [`${m.name}@${m.version}`, h('td', { class: 'state-' + m.state }, m.state),
          m.default ? 'default' : '', m.in_flight, fmt.bytes(m.file_bytes), m.max_batch_tokens || '—']));
      return h('div', { class: 'processor' },
        h('p', {}, h('b', {}, p.processor), ` · RSS ${fmt.bytes(p.rss_bytes)} · desired state: ${p.desired_state || '—'}`), t);
    }));
  } catch (e) {
    $('#processors').replaceChildren();
    showError($('#processors-error'), describe(e));
  }
}

async function scrape() {
  try {
    const text = await (await api('GET', '/metrics', undefined, 'text/plain')).text();
    const cur = { t: performance.now(), samples: parseProm(text) };
    showError($('#traffic-error'), null);
    const inflight = gauge(cur.samples, 'simmatch_http_requests_in_flight');
    const queue = gauge(cur.samples, 'simmatch_processor_queue_depth');
    $('#traffic-gauges').textContent = [
      Number.isFinite(inflight) ? `HTTP requests in flight: ${inflight}` : null,
      Number.isFinite(queue) ? `processor queue depth: ${queue}` : null,
    ].filter(Boolean).join(' · ');
    if (prev) {
      const rows = traffic(prev, cur);
      table($('#traffic'), ['route', 'req/s', 'errors/s', 'mean', 'p50', 'p95'],
        rows.length ? rows.map((r) => [r.route, fmt.rate(r.rate), fmt.rate(r.errors), fmt.ms(r.mean), fmt.ms(r.p50), fmt.ms(r.p95)])
          : [[h('td', { colspan: 6, class: 'muted' }, 'no requests in the last interval')]]);
      $('#traffic').dataset.state = 'live';
    } else {
      table($('#traffic'), ['route'], [[h('td', { class: 'muted' }, 'measuring…')]]);
    }
    prev = cur;
  } catch (e) {
    showError($('#traffic-error'), describe(e));
  }
}

export default {
  init() {
    $('#models-refresh').addEventListener('click', loadModels);
  },
  enter() {
    loadModels();
    clearInterval(timer);
    prev = null;
    scrape();
    timer = setInterval(scrape, POLL_MS);
  },
  leave() {
    clearInterval(timer);
    timer = null;
  },
};
