// Group updates: the list, and one update's phases, batches and
// handovers, with the abort button (the same call as `handover update --abort`).
import { get, post } from '../api.js';
import { h, card, table, kv, pill, dur, ago, stamp, num, migrationLink, updateLink, instanceLink, errorBox, tile } from '../ui.js';
import { gantt } from '../charts.js';
import { confirmAction } from '../modal.js';

const running = (u) => u.state === 'Running' || u.state === 'RollingBack';
const took = (u, now) => (Date.parse(u.ended_at || '') || now) - Date.parse(u.created_at);

export async function list({ now }) {
  const { updates } = await get('/v1/updates');
  updates.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  return h('div', { class: 'page' }, h('h1', {}, 'Group updates'),
    card(`${updates.length} updates, newest first`, table([
      { label: 'Update', cell: (u) => updateLink(u.id) },
      { label: 'Group', cell: (u) => h('b', {}, u.group) },
      { label: 'Strategy', cell: (u) => u.spec.strategy },
      { label: 'State', cell: (u) => pill(u.state) },
      { label: 'Phase', cell: (u) => u.phase || '–' },
      { label: 'Replaced', cell: (u) => num((u.replacements || []).filter((r) => !r.rollback && r.new).length), cls: 'num' },
      { label: 'Took', cell: (u) => dur(took(u, now)), cls: 'num' },
      { label: 'Started', cell: (u) => ago(u.created_at, now) },
    ], updates, 'No group update yet. Start one with handover update --group NAME.', { id: 'updates' })));
}

export async function detail({ params: [id], width, now, refresh }) {
  const u = await get('/v1/updates/' + encodeURIComponent(id));
  const byMig = new Map(u.migrations.map((m) => [m.id, m]));
  const abort = running(u) && !u.abort_requested
    ? h('button', {
      type: 'button', class: 'danger', id: 'abort',
      onclick: async (e) => {
        const reason = await confirmAction({
          title: `Abort the update of ${u.group}?`,
          body: 'The update stops and rolls back: instances it replaced are replaced again with the old launch template version, and every database moves back by handover. This is what handover update --abort does.',
          confirm: 'Abort and roll back', reasonLabel: 'Reason (kept in the ledger)',
        });
        if (reason === null) return;
        e.target.disabled = true;
        try { await post('/v1/updates/' + encodeURIComponent(u.id) + '/abort', { reason: reason || 'aborted from the dashboard' }); } catch (err) { alertBox(err.message); }
        refresh();
      },
    }, 'Abort update…')
    : null;

  const head = h('div', { class: 'title' }, h('h1', {}, 'Update of ', h('b', {}, u.group)), pill(u.state),
    running(u) ? h('span', { class: 'live-dot', title: 'live' }) : null, h('span', { class: 'spacer' }), abort,
    u.abort_requested && running(u) ? h('span', { class: 'pill warn' }, 'abort requested') : null);

  const fwd = (u.replacements || []).filter((r) => !r.rollback);
  const tiles = h('div', { class: 'tiles' },
    tile('Strategy', u.spec.strategy, u.spec.strategy === 'rolling' ? `batches of ${u.spec.batch_size || 1}` : `new group ${u.new_group || '…'}`),
    tile('Phase', u.phase || '–', u.batches ? `batch ${Math.min(u.batch + 1, u.batches.length)} of ${u.batches.length}` : ''),
    tile('Replaced', `${fwd.filter((r) => r.done).length} of ${u.batches ? u.batches.flat().length : Math.max(fwd.length, u.old_desired)}`, 'instances'),
    tile('Took', dur(took(u, now)), running(u) ? 'running' : `ended ${ago(u.ended_at, now)}`),
    tile('Longest write pause', dur(Math.max(0, ...u.migrations.map((m) => m.write_pause_ms))), 'of its handovers', 'paused'));

  const steps = u.timeline || [];
  const phases = card('Phases', gantt(steps.map((s, i) => ({
    label: phaseLabel(s), start: Date.parse(s.start), note: s.note, cls: s.phase === 'done' ? 'end ' + u.state : 'phase-' + s.phase,
    end: s.end ? Date.parse(s.end) : (s.phase === 'done' ? Date.parse(s.start) : (i < steps.length - 1 ? Date.parse(steps[i + 1].start) : null)),
  })), { width: width - 34, now }));

  const batchRows = (u.replacements || []).map((r) => ({ ...r, mig: byMig.get(r.migration) }));
  const batches = card('Batches', table([
    { label: 'Batch', cell: (r) => (r.rollback ? `rollback ${r.batch + 1}` : `${r.batch + 1}`), cls: 'num' },
    { label: 'Old instance', cell: (r) => instanceLink(r.old) },
    { label: 'Database', cell: (r) => r.database || '–' },
    { label: 'New instance', cell: (r) => (r.new ? instanceLink(r.new) : h('span', { class: 'muted' }, 'waiting')) },
    { label: 'Handover', cell: (r) => (r.migration ? migrationLink(r.migration) : '–') },
    { label: 'State', cell: (r) => pill(r.mig ? r.mig.state : r.state || 'waiting') },
    { label: 'Write pause', cell: (r) => (r.mig && r.mig.write_pause_ms ? dur(r.mig.write_pause_ms) : '–'), cls: 'num' },
  ], batchRows, u.spec.strategy === 'replace-all' ? 'A replace-all update has no batches: see its handovers.' : 'No batch started yet.'));

  const handovers = card('Its handovers', table([
    { label: 'Handover', cell: (m) => migrationLink(m.id) },
    { label: 'Database', cell: (m) => m.database || '–' },
    { label: 'From', cell: (m) => instanceLink(m.source) },
    { label: 'To', cell: (m) => instanceLink(m.instance) },
    { label: 'State', cell: (m) => pill(m.state) },
    { label: 'Write pause', cell: (m) => (m.write_pause_ms ? dur(m.write_pause_ms) : '–'), cls: 'num' },
    { label: 'Took', cell: (m) => dur(m.duration_ms), cls: 'num' },
  ], u.migrations, 'No handover yet.', { id: 'update-migrations' }));

  const signals = Object.entries(u.signals || {});
  const about = card('Details', kv([
    ['Update id', h('code', { class: 'wrap' }, u.id)],
    ['Template', `${u.old_template.name || u.old_template.id || ''} v${u.old_template.version || '?'} → v${u.spec.template.version || '?'}`],
    ['Capacity before', `min ${u.old_min}, max ${u.old_max}, desired ${u.old_desired}`],
    ['Min healthy', u.spec.min_healthy_percent ? u.spec.min_healthy_percent + '%' : ''],
    ['New group', u.new_group],
    ['Signals', signals.length ? signals.map(([i, v]) => h('span', { class: 'sig' }, instanceLink(i), ' ', pill(v))) : ''],
    ['Migration group', u.spec.migration_group],
    ['Started', stamp(u.created_at)],
    ['Ended', u.ended_at ? stamp(u.ended_at) : ''],
  ]));

  return h('div', { class: 'page' }, h('p', { class: 'crumbs' }, h('a', { href: '#/updates' }, 'Updates'), ' / ', u.id),
    head, tiles, u.error ? card('Why it stopped', errorBox(u.error), null, 'alert') : null, phases, batches, handovers, about);
}

// phaseLabel names a batch's phases by their batch: "batch 2", "bake 2".
function phaseLabel(s) {
  const m = (s.note || '').match(/^batch (\d+) of/);
  return m && (s.phase === 'batch' || s.phase === 'bake' || s.phase === 'pause') ? `${s.phase} ${m[1]}` : s.phase;
}

function alertBox(msg) {
  const el = errorBox(msg);
  el.classList.add('toast');
  document.body.append(el);
  setTimeout(() => el.remove(), 8000);
}
