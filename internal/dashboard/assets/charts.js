// Inline SVG charts, sized to the width the page has (redrawn on resize).
import { s, h, dur, clock } from './ui.js';

// niceStep picks a tick step of 1, 2 or 5 times a power of ten so that
// span holds about n ticks.
function niceStep(span, n) {
  const raw = span / Math.max(1, n);
  const p = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

// gantt draws one row per step: [{label, start, end, note, cls}] with
// times in ms since the epoch (end null: still running, drawn to now),
// and band {from, to, label} shaded across every row (the write pause).
export function gantt(rows, { width, now = Date.now(), band } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, 'No steps recorded yet.');
  const narrow = width < 560;
  const labelW = narrow ? 104 : 150, durW = narrow ? 62 : 80, rowH = 28, axisH = 22;
  const trackW = Math.max(60, width - labelW - durW);
  const t0 = rows[0].start;
  const t1 = Math.max(...rows.map((r) => r.end ?? now), t0 + 1);
  const x = (v) => labelW + ((v - t0) / (t1 - t0)) * trackW;
  const height = axisH + rows.length * rowH + 6;
  const svg = s('svg', { class: 'gantt', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'timeline of the steps' });

  const step = niceStep(t1 - t0, narrow ? 3 : 6);
  for (let v = 0; v <= t1 - t0 + 1e-9; v += step) {
    const xx = x(t0 + v);
    svg.append(s('line', { class: 'grid', x1: xx, x2: xx, y1: axisH - 4, y2: height }),
      s('text', { class: 'axis', x: xx, y: 12, 'text-anchor': 'middle' }, '+' + dur(v)));
  }
  if (band && band.from) {
    const bx = x(band.from), bw = Math.max(2, x(band.to ?? now) - bx);
    svg.append(s('rect', { class: 'pause-band', x: bx, y: axisH - 4, width: bw, height: height - axisH + 4 },
      s('title', {}, band.label)));
  }
  rows.forEach((r, i) => {
    const y = axisH + i * rowH;
    const end = r.end ?? now;
    const bx = x(r.start), bw = Math.max(3, x(end) - bx);
    const g = s('g', { class: 'gantt-row ' + (r.cls || ''), 'data-state': r.label },
      s('title', {}, `${r.label}: ${dur(end - r.start)}${r.end ? '' : ' (running)'}${r.note ? ' — ' + r.note : ''}`),
      s('text', { class: 'gantt-label', x: 0, y: y + rowH / 2 + 4 }, r.label),
      s('rect', { class: 'bar' + (r.end ? '' : ' running'), x: bx, y: y + 5, width: bw, height: rowH - 10, rx: 3 }),
      s('text', { class: 'gantt-dur', x: width - 2, y: y + rowH / 2 + 4, 'text-anchor': 'end' }, dur(end - r.start)));
    svg.append(g);
  });
  return h('div', { class: 'chart' }, svg);
}

// bars draws one vertical bar per item: [{label, value, href, cls, title}].
export function bars(items, { width, height = 150, fmt = String, empty = 'Nothing to chart yet.' } = {}) {
  if (!items.length) return h('p', { class: 'empty' }, empty);
  const left = 56, bottom = 18, top = 10;
  const plotW = width - left - 4, plotH = height - bottom - top;
  const max = Math.max(...items.map((i) => i.value), 1);
  const step = niceStep(max, 3);
  const ymax = Math.ceil(max / step) * step;
  const svg = s('svg', { class: 'bars', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
  for (let v = 0; v <= ymax + 1e-9; v += step) {
    const y = top + plotH - (v / ymax) * plotH;
    svg.append(s('line', { class: 'grid', x1: left, x2: width, y1: y, y2: y }),
      s('text', { class: 'axis', x: left - 6, y: y + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  const slot = plotW / items.length;
  const bw = Math.max(2, Math.min(36, slot * 0.7));
  items.forEach((it, i) => {
    const bh = Math.max(1, (it.value / ymax) * plotH);
    const bx = left + i * slot + (slot - bw) / 2;
    const rect = s('rect', { class: 'bar ' + (it.cls || ''), x: bx, y: top + plotH - bh, width: bw, height: bh, rx: 2 },
      s('title', {}, it.title || `${it.label}: ${fmt(it.value)}`));
    svg.append(it.href ? s('a', { href: it.href }, rect) : rect);
  });
  svg.append(s('text', { class: 'axis', x: left, y: height - 3 }, items[0].label),
    s('text', { class: 'axis', x: width - 2, y: height - 3, 'text-anchor': 'end' }, items[items.length - 1].label));
  return h('div', { class: 'chart' }, svg);
}

// line draws series [{name, cls, points: [[ms, value]]}] over time.
export function line(series, { width, height = 160, fmt = String, empty = 'Collecting samples…' } = {}) {
  const pts = series.flatMap((x) => x.points);
  if (pts.length < 2) return h('p', { class: 'empty' }, empty);
  const left = 56, bottom = 18, top = 10;
  const plotW = width - left - 6, plotH = height - bottom - top;
  const tmin = Math.min(...pts.map((p) => p[0])), tmax = Math.max(...pts.map((p) => p[0]), tmin + 1);
  let max = Math.max(...pts.map((p) => p[1]));
  if (!(max > 0)) max = 1; // a flat zero still gets an axis
  const step = niceStep(max, 3);
  const ymax = Math.ceil(max / step) * step || 1;
  const X = (v) => left + ((v - tmin) / (tmax - tmin)) * plotW;
  const Y = (v) => top + plotH - (v / ymax) * plotH;
  const svg = s('svg', { class: 'line', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
  for (let v = 0; v <= ymax + 1e-9; v += step) {
    svg.append(s('line', { class: 'grid', x1: left, x2: width, y1: Y(v), y2: Y(v) }),
      s('text', { class: 'axis', x: left - 6, y: Y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  series.forEach((x, i) => {
    if (!x.points.length) return;
    const d = x.points.map((p, j) => `${j ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
    svg.append(s('path', { class: 'series s' + (i % 4) + ' ' + (x.cls || ''), d }, s('title', {}, x.name)));
  });
  svg.append(s('text', { class: 'axis', x: left, y: height - 3 }, clock(tmin)),
    s('text', { class: 'axis', x: width - 2, y: height - 3, 'text-anchor': 'end' }, clock(tmax)));
  const legend = series.length > 1 ? h('div', { class: 'legend' }, series.map((x, i) => h('span', { class: 'key s' + (i % 4) }, x.name))) : null;
  return h('div', { class: 'chart' }, svg, legend);
}
