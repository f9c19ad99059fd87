// Handovers: the list, one handover's timeline, and the handovers that
// touched an instance or a volume.
import { get } from '../api.js';
import { h, card, table, kv, pill, dur, ago, stamp, num, migrationLink, updateLink, instanceLink, volumeLink, errorBox, tile } from '../ui.js';
import { gantt } from '../charts.js';
import { recentCols } from './overview.js';

const terminal = (s) => s === 'Committed' || s === 'Aborted';
const sum = (xs, k) => xs.reduce((a, x) => a + (x[k] || 0), 0);

export async function list({ now }) {
  const { migrations } = await get('/v1/migrations?limit=500');
  return h('div', { class: 'page' }, h('h1', {}, 'Handovers'),
    card(`${migrations.length} handovers, newest first`, table(recentCols(now), migrations, 'No handover yet.', { id: 'handovers' })));
}

// steps turns the API's steps into Gantt rows; the terminal step is an
// instant, not a bar that grows with the clock.
function ganttRows(m, now) {
  return m.steps.map((s, i) => {
    const start = Date.parse(s.start);
    let end = s.end ? Date.parse(s.end) : null;
    if (terminal(s.state)) end = start;
    else if (!end && i < m.steps.length - 1) end = Date.parse(m.steps[i + 1].start);
    const note = [s.note, s.calls ? `${s.calls} cloud calls${s.throttled ? `, ${s.throttled} throttled` : ''}` : ''].filter(Boolean).join(' · ');
    return { label: s.state, start, end, note, cls: terminal(s.state) ? 'end ' + s.state : s.state };
  });
}

// calls says what a step asked of the cloud: "4", "5 · 1 throttled".
function calls(s) {
  if (!s.calls && !s.paced) return '–';
  const extra = [s.throttled ? `${s.throttled} throttled` : '', s.errors ? `${s.errors} failed` : '', s.paced ? `${s.paced} held back` : ''].filter(Boolean);
  return h('span', { class: s.throttled || s.errors ? 'warn-text' : '' }, [String(s.calls || 0), ...extra].join(' · '));
}

function fenceStart(m) {
  const f = m.steps.find((s) => s.state === 'Fencing');
  return f ? Date.parse(f.start) : null;
}

export async function detail({ params: [id], width, now }) {
  const m = await get('/v1/migrations/' + encodeURIComponent(id));
  const from = fenceStart(m);
  const t0 = m.steps.length ? Date.parse(m.steps[0].start) : Date.parse(m.created_at);
  const running = !terminal(m.state);
  const pauseLabel = from ? `write pause ${dur(m.write_pause_ms)}${running && m.write_pause_ms ? ' so far' : ''}` : 'no write pause (nothing was fenced)';

  const head = h('div', { class: 'title' },
    h('h1', {}, 'Handover of ', h('b', {}, m.database || '(database not picked yet)'), ' to ', instanceLink(m.instance)),
    pill(m.state), running ? h('span', { class: 'live-dot', title: 'live' }) : null);

  const tiles = h('div', { class: 'tiles' },
    tile('Write pause', h('span', { id: 'write-pause' }, from ? dur(m.write_pause_ms) : '–'), from ? 'fence to commit' : 'nothing was fenced', from ? 'paused' : ''),
    tile('Took', dur(m.duration_ms), running ? 'running' : `ended ${ago(m.updated_at, now)}`),
    tile('Epoch', `${m.from_epoch} → ${m.fence_epoch || m.from_epoch + (m.state === 'Committed' ? 1 : 0)}`, m.state === 'Committed' ? 'new volume authoritative' : ''),
    tile('Retries', num(m.attempts || 0), m.last_error ? 'of the current step' : 'no error', m.last_error ? 'warn' : ''),
    tile('Cloud calls', num(sum(m.steps, 'calls')), `${sum(m.steps, 'throttled')} throttled · ${sum(m.steps, 'errors')} failed · ${sum(m.steps, 'paced')} held back`, sum(m.steps, 'throttled') ? 'warn' : ''));

  const problems = m.last_error ? card('Last error', errorBox(m.last_error), null, 'alert') : null;

  const timeline = card('Timeline', [
    gantt(ganttRows(m, now), { width: width - 34, now, band: from ? { from, to: from + m.write_pause_ms, label: pauseLabel } : null }),
    h('p', { class: 'legend' }, h('span', { class: 'key pause' }, pauseLabel), h('span', { class: 'muted' }, `started ${stamp(m.created_at)}`)),
  ]);

  const steps = card('Steps', table([
    { label: '#', cell: (s) => s.n, cls: 'num idx' },
    { label: 'Step', cell: (s) => pill(s.state) },
    { label: 'Start', cell: (s) => '+' + dur(Date.parse(s.start) - t0), cls: 'num' },
    { label: 'Duration', cell: (s) => (terminal(s.state) ? '–' : dur(s.duration_ms) + (s.end ? '' : ' …')), cls: 'num' },
    { label: 'Cloud calls', cell: (s) => calls(s), cls: 'num calls' },
    { label: 'Note', cell: (s) => s.note || '' },
  ], m.steps.map((s, i) => ({ ...s, n: i + 1 })), 'No steps yet.', { id: 'steps' }));

  const about = card('Details', kv([
    ['Migration id', h('code', { class: 'wrap' }, m.id)],
    ['Group', m.group],
    ['Hook', m.hook],
    ['Cause', m.cause],
    ['Zone', m.zone],
    ['Source instance', m.source ? instanceLink(m.source) : ''],
    ['Source fate', m.source_fate],
    ['Source volume', m.source_volume ? volumeLink(m.source_volume) : ''],
    ['Pre-copy snapshot', m.pre_copy_snapshot ? h('code', {}, m.pre_copy_snapshot) : ''],
    ['Final snapshot', m.final_snapshot ? h('code', {}, m.final_snapshot) : ''],
    ['New volume', m.volume ? volumeLink(m.volume) : ''],
    ['Hook result', m.result],
  ]));

  const res = card('Cloud resources it created', table([
    { label: 'Kind', cell: (r) => r.kind },
    { label: 'Id', cell: (r) => (r.kind === 'volume' ? volumeLink(r.id) : h('code', {}, r.id)) },
    { label: 'Purpose', cell: (r) => r.purpose },
    { label: 'Now', cell: (r) => (r.deleted ? h('span', { class: 'muted' }, 'deleted') : 'kept') },
  ], m.resources || [], 'None.'));

  return h('div', { class: 'page' }, h('p', { class: 'crumbs' }, h('a', { href: '#/handovers' }, 'Handovers'), ' / ', m.id),
    head, tiles, problems, timeline, steps, h('div', { class: 'grid2' }, about, res));
}

// resource lists the handovers that moved data to, from or onto an
// instance or a volume, and the database it holds now.
export function resource(kind) {
  return async ({ params: [id], now }) => {
    const [{ migrations }, { databases }] = await Promise.all([get('/v1/migrations?limit=1000'), get('/v1/databases')]);
    const touches = kind === 'instance'
      ? (m) => m.instance === id || m.source === id
      : (m) => false;
    let rows = migrations.filter(touches);
    if (kind === 'volume') {
      // The summaries do not name volumes: read each recent handover.
      const docs = await Promise.all(migrations.slice(0, 60).map((m) => get('/v1/migrations/' + encodeURIComponent(m.id))));
      rows = docs.filter((d) => d.volume === id || d.source_volume === id || (d.resources || []).some((r) => r.id === id));
    }
    const holds = databases.filter((d) => (kind === 'instance' ? d.instance === id : d.volume === id));
    return h('div', { class: 'page' }, h('h1', {}, kind === 'instance' ? 'Instance ' : 'Volume ', h('code', {}, id)),
      card('Holds', holds.length ? kv(holds.map((d) => [d.id, `epoch ${d.epoch} · ${kind === 'instance' ? d.volume : d.instance} · ${d.zone}`]))
        : h('p', { class: 'empty' }, `No database's authoritative ${kind === 'instance' ? 'volume is on this instance' : 'volume is this one'}.`)),
      card('Handovers', table(recentCols(now), rows, 'No handover touched it.')));
  };
}
