// The console's entry point: the key form, the views and a hash router
// (#models, #catalogs, #import, #jobs, #predict).
import { apiKey } from './api.js';
import { $ } from './dom.js';
import models from './models.js';
import catalogs from './catalogs.js';
import importer from './importer.js';
import jobs from './jobs.js';
import playground from './playground.js';

const views = { models, catalogs, import: importer, jobs, predict: playground };
let current = null;

function showKeyState() {
  $('#key-state').textContent = apiKey.get() ? 'key set for this tab' : 'no key';
}

function route() {
  const name = location.hash.slice(1) in views ? location.hash.slice(1) : 'models';
  if (current && current !== name) views[current].leave?.();
  current = name;
  for (const v of Object.keys(views)) $('#view-' + v).hidden = v !== name;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === name);
  views[name].enter();
}

for (const v of Object.values(views)) v.init();
$('#key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  apiKey.set($('#key').value.trim());
  $('#key').value = '';
  showKeyState();
  views[current].enter();
});
$('#key-forget').addEventListener('click', () => {
  apiKey.set('');
  showKeyState();
  views[current].enter();
});
window.addEventListener('hashchange', route);
showKeyState();
route();
document.body.dataset.ready = 'true';
