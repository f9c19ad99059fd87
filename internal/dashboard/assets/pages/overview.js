// Overview: the controller, what is in flight, what failed, and where
// every database's data is.
import { get } from '../api.js';
import { h, card, table, kv, tile, pill, dur, ago, num, migrationLink, updateLink, instanceLink, volumeLink, errorBox, clock } from '../ui.js';
import { bars } from '../charts.js';

const DAY = 24 * 3600 * 1000;

export async function render({ width, now }) {
  const [st, mig, dbs, ups, lss] = await Promise.all([
    get('/v1/status'), get('/v1/migrations?limit=500'), get('/v1/databases'), get('/v1/updates').catch(() => ({ updates: [] })),
    get('/v1/leases').catch((e) => ({ error: String(e.message || e) })),
  ]);
  const ms = mig.migrations;
  const inflight = ms.filter((m) => m.state !== 'Committed' && m.state !== 'Aborted');
  const failed = ms.filter((m) => m.state === 'Aborted' && now - Date.parse(m.updated_at) < DAY);
  const upFailed = ups.updates.filter((u) => (u.state === 'Failed' || u.state === 'Aborted') && now - Date.parse(u.ended_at || u.updated_at) < DAY);
  const upRunning = ups.updates.filter((u) => u.state === 'Running' || u.state === 'RollingBack');

  const tiles = h('div', { class: 'tiles' },
    tile('Handovers in flight', num(st.unfinished), inflight.length ? inflight.map((m) => m.state).join(', ') : 'none', st.unfinished ? 'busy' : ''),
    tile('Failures, last 24 h', num(failed.length + upFailed.length), `${failed.length} handovers, ${upFailed.length} updates`, failed.length + upFailed.length ? 'bad' : 'good'),
    tile('Databases', num(st.databases), `${dbs.databases.filter((d) => d.claim).length} being moved`),
    tile('Updates running', num(upRunning.length), upRunning.map((u) => u.group).join(', ') || 'none'),
    queueTile(st),
  );

  const controller = card('Controller', kv([
    ['Holder', h('code', {}, st.holder)],
    ['Running since', `${ago(st.started_at, now)}`],
    ['Ledger', h('code', {}, st.ledger)],
    ['Events queue', h('code', { class: 'wrap' }, st.queue)],
    ['Last message', st.last_message_at ? ago(st.last_message_at, now) : 'none yet'],
    ['Reconcile', st.last_reconcile_at ? [ago(st.last_reconcile_at, now), st.last_reconcile_error ? errorBox(st.last_reconcile_error) : ''] : 'not yet'],
    ['Sweeper', st.last_sweep_at ? [`${ago(st.last_sweep_at, now)} · swept ${st.swept_volumes} volumes, ${st.swept_snapshots} snapshots`, st.last_sweep_error ? errorBox(st.last_sweep_error) : ''] : 'not yet'],
    ['Release controller', st.last_release_pass_at ? [ago(st.last_release_pass_at, now), st.last_release_pass_error ? errorBox(st.last_release_pass_error) : ''] : ''],
    ['Messages', `${num(st.messages_handled)} handled, ${num(st.messages_poison)} poison; last one waited ${dur(st.queue_lag_seconds * 1000)} in the queue`],
    ['Leases held', leaseList(st.leases || [], now, 'leases')],
  ]));

  const controllers = card('Controllers and their leases', holders(st, lss, now),
    h('span', { class: 'muted' }, 'every holder in the ledger: controllers, publishes, env commands'));

  const byState = Object.entries(st.migrations || {}).filter(([s]) => s !== 'Committed' && s !== 'Aborted');
  const flight = card('In flight, by state', byState.length
    ? h('ul', { class: 'counts' }, byState.map(([s, n]) => h('li', {}, pill(s), h('b', {}, n))))
    : h('p', { class: 'empty' }, 'Nothing in flight.'),
  h('span', { class: 'muted' }, `${num((st.migrations || {}).Committed || 0)} committed, ${num((st.migrations || {}).Aborted || 0)} aborted in all`));

  const fails = card('Failures in the last 24 h', table([
    { label: 'What', cell: (f) => (f.kind === 'update' ? ['update ', updateLink(f.id)] : ['handover ', migrationLink(f.id)]) },
    { label: 'Of', cell: (f) => f.of },
    { label: 'When', cell: (f) => ago(f.at, now) },
    { label: 'Why', cell: (f) => h('span', { class: 'why' }, f.why || '–') },
  ], [...failed.map((m) => ({ kind: 'migration', id: m.id, of: m.database || m.group, at: m.updated_at, why: m.last_error })),
    ...upFailed.map((u) => ({ kind: 'update', id: u.id, of: u.group, at: u.ended_at || u.updated_at, why: u.error }))]
    .sort((a, b) => Date.parse(b.at) - Date.parse(a.at)), 'No failures in the last 24 hours.'));

  const databases = card('Databases: where the data is', table([
    { label: 'Database', cell: (d) => h('b', {}, d.id) },
    { label: 'Authoritative volume', cell: (d) => volumeLink(d.volume) },
    { label: 'Epoch', cell: (d) => num(d.epoch), cls: 'num' },
    { label: 'Instance', cell: (d) => instanceLink(d.instance) },
    { label: 'Zone', cell: (d) => d.zone || '–' },
    { label: 'Group', cell: (d) => d.group || '–' },
    { label: 'Moving', cell: (d) => (d.claim ? migrationLink(d.claim) : h('span', { class: 'muted' }, 'idle')) },
  ], dbs.databases, 'No database has booted yet.', { id: 'databases' }));

  const paused = ms.filter((m) => m.write_pause_ms > 0).slice(0, 40).reverse();
  const chart = card('Write pause per handover', bars(paused.map((m) => ({
    label: m.database, value: m.write_pause_ms, href: '#/handover/' + encodeURIComponent(m.id),
    cls: m.state === 'Aborted' ? 'bad' : '', title: `${m.database} → ${m.instance}: ${dur(m.write_pause_ms)} (${m.state})`,
  })), { width: Math.min(width, 1200) - 34, fmt: dur, empty: 'No handover has fenced a database yet.' }), h('span', { class: 'muted' }, 'fence to commit, oldest to newest'));

  const recent = card('Recent handovers', table(recentCols(now), ms.slice(0, 12)), h('a', { href: '#/handovers' }, 'All handovers →'));

  return h('div', { class: 'page' }, h('h1', {}, 'Overview'), tiles,
    h('div', { class: 'grid2' }, controller, flight), controllers, fails, databases, chart, recent);
}

// queueTile: the events queue's depth and its dead-letter queue's.
function queueTile(st) {
  const q = st.events_queue, d = st.dead_letter_queue;
  if (!q) return tile('Events queue', `${num(st.messages_handled)} handled`, `${num(st.messages_poison)} poison`);
  if (q.error) return tile('Events queue', 'unreadable', q.error, 'warn');
  const dl = d ? (d.error ? 'DLQ unreadable' : `DLQ ${num(d.visible + d.in_flight)}`) : 'no DLQ';
  return h('div', { class: 'tile ' + (d && d.visible + d.in_flight > 0 ? 'bad' : q.visible > 0 ? 'busy' : '') },
    h('div', { class: 'tile-label' }, 'Events queue'),
    h('div', { class: 'tile-value', id: 'queue-depth' }, `${num(q.visible)} waiting`),
    h('div', { class: 'tile-sub' }, `${num(q.in_flight)} in flight · `, h('span', { id: 'dlq-depth' }, dl)));
}

// holders groups the ledger's leases (GET /v1/leases) by holder, this
// controller first and shown even when it holds nothing, so controllers
// sharing a ledger are all on one page.
function holders(st, lss, now) {
  if (lss.error) return errorBox(`reading the ledger's leases: ${lss.error}`);
  const by = new Map([[st.holder, []]]);
  for (const l of lss.leases) {
    if (!by.has(l.holder)) by.set(l.holder, []);
    by.get(l.holder).push(l);
  }
  return h('div', { class: 'holders', id: 'controllers' }, [...by.entries()].map(([holder, ls]) => h('div', { class: 'holder', 'data-holder': holder },
    h('div', { class: 'holder-name' }, h('code', {}, holder), holder === st.holder ? pill('this controller') : null,
      h('span', { class: 'muted' }, ls.length === 1 ? '1 lease' : `${ls.length} leases`)),
    leaseList(ls, now))));
}

function leaseList(leases, now, id) {
  if (!leases.length) return h('span', { class: 'muted' }, 'none: nothing to work on');
  return h('ul', { class: 'leases', id }, leases.map((l) => {
    const i = l.name.indexOf('/');
    const [kind, id] = i < 0 ? ['', l.name] : [l.name.slice(0, i), l.name.slice(i + 1)];
    const target = kind === 'migration' ? [kind, ' ', migrationLink(id)] : kind === 'update' ? [kind, ' ', updateLink(id)] : h('code', {}, l.name);
    return h('li', { 'data-lease': l.name }, h('span', {}, target), h('span', { class: 'muted' }, `token ${l.token} · expires ${ago(l.expires, now)} (${clock(l.expires)})`));
  }));
}

export function recentCols(now) {
  return [
    { label: 'Handover', cell: (m) => migrationLink(m.id) },
    { label: 'Database', cell: (m) => m.database || '–' },
    { label: 'To', cell: (m) => instanceLink(m.instance) },
    { label: 'State', cell: (m) => pill(m.state) },
    { label: 'Write pause', cell: (m) => (m.write_pause_ms ? dur(m.write_pause_ms) : '–'), cls: 'num' },
    { label: 'Took', cell: (m) => dur(m.duration_ms), cls: 'num' },
    { label: 'Started', cell: (m) => ago(m.created_at, now) },
  ];
}
