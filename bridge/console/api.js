// The console's only way to the service: the public HTTP API, same origin,
// with the user's API key from sessionStorage (gone when the tab closes).

const KEY = 'simmatch.apiKey';

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (k) => (k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY)),
};

// APIError is a refusal or failure, with the API's error body
// ({"error": {"code", "message", "field", "limit", "request_id"}}) when there is one.
export class APIError extends Error {
  constructor(status, error, headers, fallback) {
    super((error && error.message) || fallback || `HTTP ${status}`);
    this.status = status;
    this.code = error && error.code;
    this.field = error && error.field;
    this.limit = error && error.limit;
    this.requestID = (error && error.request_id) || (headers && headers.get('X-Request-Id')) || '';
    this.retryAfter = headers && headers.get('Retry-After');
  }
}

// api sends one request and returns the Response when it is 2xx; any other
// status throws an APIError. body, when given, is sent as JSON.
export async function api(method, path, body, accept = 'application/json') {
  const headers = { Accept: accept };
  const key = apiKey.get();
  if (key) headers.Authorization = 'Bearer ' + key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (e) {
    throw new APIError(0, null, null, `the service could not be reached (${e.message})`);
  }
  if (!resp.ok) {
    let err = null;
    try { err = (await resp.json()).error; } catch { /* not our JSON */ }
    throw new APIError(resp.status, err, resp.headers, resp.statusText);
  }
  return resp;
}

export const getJSON = async (path) => (await api('GET', path)).json();
export const sendJSON = async (method, path, body) => (await api(method, path, body)).json();

// describe turns an error into one readable sentence for the page.
export function describe(e) {
  if (!(e instanceof APIError)) return String((e && e.message) || e);
  const msg = e.message.replace(/\.$/, '');
  const id = e.requestID ? ` (request ${e.requestID})` : '';
  const retry = e.retryAfter ? ` Retry in ${e.retryAfter} s.` : '';
  switch (e.status) {
    case 0: return `Cannot reach the service: ${msg}.`;
    case 401: return `Not authorized (401): ${msg}. Enter a valid API key at the top of the page.${id}`;
    case 403: return `Forbidden (403): ${msg}. Use a key that has this scope.${id}`;
    case 429: return e.code === 'overloaded'
      ? `The processors are busy (429 overloaded): ${msg}.${retry}${id}`
      : `Rate limit reached (429 ${e.code || ''}): ${msg}.${retry}${id}`;
    case 413: return `Too large (413): ${msg}.${id}`;
    case 422: return `Invalid request (422)${e.field ? ` in field "${e.field}"` : ''}: ${msg}.${id}`;
    case 503: return `No processor is serving (503): ${msg}.${retry}${id}`;
    default: return `${e.status} ${e.code || ''}: ${msg}.${id}`;
  }
}
