// The /predict playground: queries on the left, descriptions on the right,
// the score of every pair in a heat map between them.
import { getJSON, sendJSON, describe } from './api.js';
import { $, h, showError } from './dom.js';

const textLines = (sel) => $(sel).value.split('\n').map((s) => s.trim()).filter(Boolean);

// color maps a cosine score to a cell color: white at 0 and below, deep
// blue at 1 (the scale is linear; text turns white on dark cells).
function color(score) {
  const x = Math.max(0, Math.min(1, score));
  return `hsl(215 80% ${Math.round(97 - 62 * x)}%)`;
}

async function loadModels() {
  try {
    const list = await getJSON('/v1/models');
    const sel = $('#predict-model');
    const was = sel.value;
    sel.replaceChildren(h('option', { value: '' }, 'default'),
      ...list.data.map((m) => h('option', { value: `${m.id}@${m.version}` }, `${m.id}@${m.version}`)));
    sel.value = was;
  } catch { /* the run shows the error */ }
}

async function run() {
  const view = $('#view-predict');
  const map = $('#heatmap');
  const queries = textLines('#predict-queries');
  const descriptions = textLines('#predict-descriptions');
  const body = { query: queries, product_descriptions: descriptions };
  if ($('#predict-model').value) body.model = $('#predict-model').value;
  map.dataset.state = 'busy';
  try {
    const resp = await sendJSON('POST', '/predict', body);
    showError($('.error', view), null);
    const head = h('tr', {}, h('th', {}, ''), descriptions.map((d, j) => h('th', { title: d }, `d${j + 1}`)));
    const rows = resp.results.map((res, i) => {
      const scores = new Array(descriptions.length).fill(null);
      for (const m of res.matches) scores[m.index] = m.score;
      const best = res.matches.length ? res.matches[0].index : -1;
      return h('tr', {}, h('th', { class: 'q', title: res.query }, res.query),
        scores.map((s, j) => h('td', {
          class: 'cell' + (j === best ? ' best' : '') + (s > 0.55 ? ' dark' : ''),
          style: s === null ? null : `background:${color(s)}`,
          title: `${res.query}\n${descriptions[j]}\n${s === null ? '' : s.toFixed(4)}`,
          dataset: { q: i, d: j },
        }, s === null ? '' : s.toFixed(3))));
    });
    map.replaceChildren(
      h('table', { class: 'heat' }, h('thead', {}, head), h('tbody', {}, rows)),
      h('p', { class: 'muted legend' }, `Cosine similarity, ${resp.model.name}@${resp.model.version}; `,
        h('span', { class: 'swatch', style: `background:${color(0)}` }), ' 0 … ',
        h('span', { class: 'swatch', style: `background:${color(1)}` }), ' 1; the outlined cell is each query\'s best match. ',
        'd1, d2, … are the descriptions in order (hover for the text).'));
    map.dataset.state = 'done';
  } catch (e) {
    map.dataset.state = 'error';
    showError($('.error', view), describe(e));
  }
}

export default {
  init() { $('#predict-run').addEventListener('click', run); },
  enter() { loadModels(); },
};
