// Parsing the Prometheus text exposition (format 0.0.4) and turning two
// scrapes into rates and latencies per route.

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function num(s) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

// parseProm returns the samples of a scrape: [{name, labels, value}].
export function parseProm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(LABEL)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: num(m[3]) });
  }
  return out;
}

// sum adds the samples named name whose labels pass keep, grouped by key(labels).
function sum(samples, name, key, keep = () => true) {
  const m = new Map();
  for (const s of samples) {
    if (s.name !== name || !keep(s.labels)) continue;
    const k = key(s.labels);
    m.set(k, (m.get(k) || 0) + s.value);
  }
  return m;
}

// quantile interpolates q in cumulative buckets [[le, count]] sorted by le,
// as PromQL's histogram_quantile does.
export function quantile(q, buckets) {
  if (!buckets.length) return NaN;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe; // beyond the last finite bucket
      if (count === prevCount) return le;
      return prevLe + (le - prevLe) * ((rank - prevCount) / (count - prevCount));
    }
    prevLe = le; prevCount = count;
  }
  return prevLe;
}

const skip = (l) => l.route !== '/metrics';

// traffic compares two scrapes (prev, cur: {t: ms, samples}) and returns one
// row per route that answered between them: {route, rate, errors, mean, p50, p95}.
export function traffic(prev, cur) {
  const dt = (cur.t - prev.t) / 1000;
  const byRoute = (l) => l.route;
  const req = [sum(prev.samples, 'simmatch_http_requests_total', byRoute, skip), sum(cur.samples, 'simmatch_http_requests_total', byRoute, skip)];
  const errKeep = (l) => skip(l) && l.outcome !== 'ok';
  const errs = [sum(prev.samples, 'simmatch_http_requests_total', byRoute, errKeep), sum(cur.samples, 'simmatch_http_requests_total', byRoute, errKeep)];
  const d = 'simmatch_http_request_duration_seconds';
  const secs = [sum(prev.samples, d + '_sum', byRoute, skip), sum(cur.samples, d + '_sum', byRoute, skip)];
  const cnt = [sum(prev.samples, d + '_count', byRoute, skip), sum(cur.samples, d + '_count', byRoute, skip)];
  const bk = (l) => l.route + '\u0000' + l.le;
  const bkts = [sum(prev.samples, d + '_bucket', bk, skip), sum(cur.samples, d + '_bucket', bk, skip)];
  const rows = [];
  for (const [route, n] of req[1]) {
    const dn = n - (req[0].get(route) || 0);
    if (dn <= 0) continue;
    const dc = (cnt[1].get(route) || 0) - (cnt[0].get(route) || 0);
    const ds = (secs[1].get(route) || 0) - (secs[0].get(route) || 0);
    const buckets = [];
    for (const [k, c] of bkts[1]) {
      const [r, le] = k.split('\u0000');
      if (r === route) buckets.push([num(le), c - (bkts[0].get(k) || 0)]);
    }
    buckets.sort((a, b) => a[0] - b[0]);
    rows.push({
      route,
      rate: dn / dt,
      errors: ((errs[1].get(route) || 0) - (errs[0].get(route) || 0)) / dt,
      mean: dc > 0 ? ds / dc : NaN,
      p50: quantile(0.5, buckets),
      p95: quantile(0.95, buckets),
    });
  }
  rows.sort((a, b) => b.rate - a.rate || a.route.localeCompare(b.route));
  return rows;
}

// gauge is the sum of the samples named name (NaN when there are none).
export function gauge(samples, name) {
  let v = NaN;
  for (const s of samples) if (s.name === name) v = (Number.isNaN(v) ? 0 : v) + s.value;
  return v;
}
