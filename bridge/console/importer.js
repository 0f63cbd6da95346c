// Drag-and-drop import: the file is parsed here, then sent in batches to
// POST /v1/catalogs/{catalog}/products with a progress bar.
import { getJSON, sendJSON, describe } from './api.js';
import { $, showError, fmt } from './dom.js';
import { parseProducts } from './parse.js';

let busy = false;

async function importFile(file) {
  const view = $('#view-import');
  const status = $('#import-status');
  const bar = $('#import-progress');
  const cat = $('#import-catalog').value.trim();
  showError($('.error', view), null);
  if (busy) return;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cat)) {
    showError($('.error', view), 'Name the catalog first: 1 to 64 letters, digits, _ or -.');
    return;
  }
  const size = Math.max(1, Math.min(10000, parseInt($('#import-batch').value, 10) || 256));
  const model = $('#import-model').value.trim();
  busy = true;
  view.dataset.state = 'busy';
  try {
    let items;
    try {
      items = parseProducts(file.name, await file.text());
    } catch (e) {
      throw new Error(`${file.name}: ${e.message}`);
    }
    if (!items.length) throw new Error(`${file.name}: no products`);
    bar.hidden = false;
    bar.max = items.length;
    bar.value = 0;
    const t0 = performance.now();
    for (let i = 0; i < items.length; i += size) {
      const batch = items.slice(i, i + size);
      const body = { products: batch.map((x) => x.product) };
      if (model) body.model = model;
      try {
        await sendJSON('POST', `/v1/catalogs/${encodeURIComponent(cat)}/products`, body);
      } catch (e) {
        throw new Error(`${file.name}, lines ${batch[0].line}–${batch[batch.length - 1].line} (${fmt.int(i)} products stored before): ${describe(e)}`);
      }
      const sent = i + batch.length;
      bar.value = sent;
      const rate = sent / ((performance.now() - t0) / 1000);
      status.textContent = `${fmt.int(sent)} / ${fmt.int(items.length)} products sent (${rate.toFixed(0)}/s)`;
    }
    const { catalogs } = await getJSON('/v1/catalogs');
    const c = catalogs.find((x) => x.name === cat);
    status.textContent = `Imported ${fmt.int(items.length)} products from ${file.name} into ${cat}` +
      (c ? `; the catalog holds ${fmt.int(c.products)} products.` : '.');
    view.dataset.state = 'done';
  } catch (e) {
    showError($('.error', view), e.message);
    view.dataset.state = 'error';
  } finally {
    busy = false;
  }
}

export default {
  init() {
    const zone = $('#dropzone');
    for (const ev of ['dragenter', 'dragover']) {
      zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add('over'); });
    }
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      zone.classList.remove('over');
      const f = e.dataTransfer && e.dataTransfer.files[0];
      if (f) importFile(f);
    });
    $('#import-file').addEventListener('change', (e) => {
      const f = e.target.files[0];
      if (f) importFile(f);
      e.target.value = '';
    });
  },
  enter() {
    const sel = $('#search-catalog').value;
    if (!$('#import-catalog').value && sel) $('#import-catalog').value = sel;
  },
};
