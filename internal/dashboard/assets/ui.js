// DOM and formatting helpers shared by the pages.

// h builds an element: h('div', {class: 'x', onclick: f}, child, 'text', [more]).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';
// s builds an SVG element the same way.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

export const t = (v) => (v ? new Date(v) : null);

// dur formats milliseconds for a person: 840 ms, 3.42 s, 2 min 05 s, 1 h 12 min.
export function dur(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return '–';
  ms = Math.max(0, ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec < 10 ? sec.toFixed(2) : sec.toFixed(1)} s`;
  const m = Math.floor(sec / 60), r = Math.floor(sec % 60);
  if (m < 60) return `${m} min ${String(r).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

// ago says how long ago a time was: "12 s ago".
export function ago(v, now = Date.now()) {
  const d = t(v);
  if (!d) return '–';
  const ms = now - d.getTime();
  if (ms < 0) return 'in ' + dur(-ms);
  return dur(ms).replace(/\.\d+ s$/, ' s') + ' ago';
}

export function clock(v) {
  const d = t(v);
  return d ? d.toLocaleTimeString([], { hour12: false }) : '–';
}

export function stamp(v) {
  const d = t(v);
  return d ? d.toLocaleString([], { hour12: false }) : '–';
}

export const num = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));

// stateClass colours a state the same way everywhere.
export function stateClass(state) {
  switch (state) {
    case 'Committed': case 'Succeeded': case 'Published': case 'latest': case 'passed': case 'ok': case 'pass': return 'good';
    case 'Aborted': case 'Failed': case 'failed': case 'fail': case 'FAILURE': return 'bad';
    case 'Deleted': case 'recorded': return 'idle';
    case 'RollingBack': case 'Unfencing': case 'Retiring': case 'Draining': case 'warn': return 'warn';
    case 'Fencing': case 'Snapshotting': case 'CreatingVolume': case 'Attaching': case 'StoppingSource': return 'paused';
    default: return 'busy';
  }
}

export const pill = (state) => h('span', { class: 'pill ' + stateClass(state) }, state || '–');

export const shortID = (id) => (id && id.length > 14 && !id.startsWith('i-') && !id.startsWith('vol-') && !id.startsWith('snap-') ? id.slice(0, 8) + '…' : id);

export const link = (href, text, title) => h('a', { href, title }, text);
export const migrationLink = (id) => link('#/handover/' + encodeURIComponent(id), shortID(id), id);
export const updateLink = (id) => link('#/update/' + encodeURIComponent(id), shortID(id), id);
export const instanceLink = (id) => (id ? link('#/instance/' + encodeURIComponent(id), id) : '–');
export const volumeLink = (id) => (id ? link('#/volume/' + encodeURIComponent(id), id) : '–');

// card is a titled box; extra goes to the right of the title.
export function card(title, body, extra, cls) {
  return h('section', { class: 'card ' + (cls || '') }, h('header', {}, h('h2', {}, title), extra), body);
}

// table renders rows with columns [{label, cell: row => node|string, cls}].
export function table(cols, rows, empty = 'Nothing yet.', attrs = {}) {
  if (!rows || rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'scroll' }, h('table', attrs,
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { class: c.cls }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, cols.map((c) => h('td', { class: c.cls, 'data-label': c.label }, c.cell(r))))))));
}

// kv renders a definition list of [label, value] pairs, skipping empty values.
export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function tile(label, value, sub, cls) {
  return h('div', { class: 'tile ' + (cls || '') }, h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, value), sub ? h('div', { class: 'tile-sub' }, sub) : null);
}

export const errorBox = (msg) => h('p', { class: 'error' }, msg);
