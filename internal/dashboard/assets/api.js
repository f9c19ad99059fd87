// The public /v1 API, with the token kept in this tab's sessionStorage.
const KEY = 'handover-api-token';

export class AuthError extends Error {}

export function token() { return sessionStorage.getItem(KEY) || ''; }
export function setToken(t) { t ? sessionStorage.setItem(KEY, t) : sessionStorage.removeItem(KEY); }

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) throw new AuthError(t ? 'The controller refused this token.' : 'The controller needs a token.');
  let doc = null;
  try { doc = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) {
    const e = new Error((doc && doc.error) || `${method} ${path}: ${r.status} ${r.statusText}`);
    e.status = r.status;
    throw e;
  }
  return doc;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body ?? {});

// optional reads an endpoint a controller may not serve (an older one,
// or one without that system): null instead of an error on 404.
export async function optional(path) {
  try { return await get(path); } catch (e) { if (e.status === 404) return null; throw e; }
}
