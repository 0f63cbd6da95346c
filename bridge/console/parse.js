// Reading product files in the page, as `simmatch catalog import` does:
// JSON lines {"id", "description", "metadata"}, or CSV with a header row
// (id, description, and either a metadata column holding a JSON object or
// other columns, each a metadata key; empty cells are left out).

export class LineError extends Error {
  constructor(line, message) {
    super(`line ${line}: ${message}`);
    this.line = line;
  }
}

// parseProducts returns [{product, line}] from the file's text.
export function parseProducts(name, text) {
  return /\.csv$/i.test(name) ? parseCSVProducts(text) : parseJSONLines(text);
}

const FIELDS = new Set(['id', 'description', 'metadata']);

function parseJSONLines(text) {
  const out = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let p;
    try { p = JSON.parse(line); } catch (e) { throw new LineError(i + 1, `not JSON: ${e.message}`); }
    if (!p || typeof p !== 'object' || Array.isArray(p)) throw new LineError(i + 1, 'want a JSON object {"id", "description", "metadata"}');
    for (const k of Object.keys(p)) if (!FIELDS.has(k)) throw new LineError(i + 1, `unknown field "${k}"`);
    out.push({ product: check(i + 1, p), line: i + 1 });
  });
  return out;
}

function check(line, p) {
  if (typeof p.id !== 'string' || !p.id) throw new LineError(line, 'needs an "id" string');
  if (typeof p.description !== 'string' || !p.description.trim()) throw new LineError(line, 'needs a "description" string');
  if (p.metadata !== undefined && p.metadata !== null) {
    if (typeof p.metadata !== 'object' || Array.isArray(p.metadata)) throw new LineError(line, '"metadata" must be an object of strings');
    for (const [k, v] of Object.entries(p.metadata)) if (typeof v !== 'string') throw new LineError(line, `metadata "${k}" must be a string`);
  }
  const out = { id: p.id, description: p.description };
  if (p.metadata && Object.keys(p.metadata).length) out.metadata = p.metadata;
  return out;
}

// csvRows splits CSV (RFC 4180: quoted fields, "" escapes, CRLF or LF)
// into rows, each [fields, line where the row starts].
export function csvRows(text) {
  const rows = [];
  let field = '', row = [], quoted = false, line = 1, start = 1, i = 0, any = false;
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i++; } else quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === '"' && field === '') { quoted = true; any = true; } else if (c === ',') { row.push(field); field = ''; any = true; } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      if (any || field !== '' || row.length) { row.push(field); rows.push([row, start]); }
      row = []; field = ''; any = false; line++; start = line;
    } else { field += c; any = true; }
  }
  if (quoted) throw new LineError(start, 'a quoted field is not closed');
  if (any || field !== '' || row.length) { row.push(field); rows.push([row, start]); }
  return rows;
}

function parseCSVProducts(text) {
  const rows = csvRows(text.replace(/^\uFEFF/, ''));
  if (!rows.length) throw new LineError(1, 'the file is empty');
  const [header] = rows[0];
  const col = (n) => header.findIndex((h) => h.trim().toLowerCase() === n);
  const idc = col('id'), dc = col('description');
  if (idc < 0 || dc < 0) throw new LineError(1, `the header ${JSON.stringify(header)} needs an id and a description column`);
  return rows.slice(1).map(([r, line]) => {
    if (r.length !== header.length) throw new LineError(line, `${r.length} fields, the header has ${header.length}`);
    const p = { id: r[idc], description: r[dc] };
    const md = {};
    r.forEach((v, i) => {
      if (i === idc || i === dc || v === '') return;
      if (header[i].trim().toLowerCase() === 'metadata') {
        let m;
        try { m = JSON.parse(v); } catch (e) { throw new LineError(line, `metadata column: want a JSON object of strings: ${e.message}`); }
        Object.assign(md, m);
      } else md[header[i]] = v;
    });
    if (Object.keys(md).length) p.metadata = md;
    return { product: check(line, p), line };
  });
}
