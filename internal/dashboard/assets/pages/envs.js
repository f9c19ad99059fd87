// Environments: every operation (standby, clone, migrate) with its steps,
// the groups it touched, what a clone made, its verify results, and a
// migration's cutover.
import { get, post } from '../api.js';
import { confirmAction } from '../modal.js';
import { h, card, table, kv, pill, dur, ago, stamp, num, instanceLink, errorBox, tile } from '../ui.js';
import { gantt } from '../charts.js';

const running = (o) => o.state === 'Running' || o.state === 'RollingBack';
const took = (o, now) => (Date.parse(o.ended_at || '') || now) - Date.parse(o.created_at);
const envLink = (id) => h('a', { href: '#/env/' + encodeURIComponent(id), title: id }, id);

export async function list({ now }) {
  const { ops } = await get('/v1/envs');
  return h('div', { class: 'page' }, h('h1', {}, 'Environments'),
    card(`${ops.length} operations, newest first`, table([
      { label: 'Operation', cell: (o) => envLink(o.id) },
      { label: 'Environment', cell: (o) => h('b', {}, o.environment) },
      { label: 'Op', cell: (o) => o.op + (o.dest ? ' → ' + o.dest : '') },
      { label: 'State', cell: (o) => pill(o.state) },
      { label: 'Phase', cell: (o) => o.phase || '–' },
      { label: 'Verify', cell: (o) => (o.verify ? pill(o.verify === 'passed' ? 'pass' : o.verify === 'failed' ? 'fail' : o.verify) : '–') },
      { label: 'Took', cell: (o) => dur(took(o, now)), cls: 'num' },
      { label: 'Started', cell: (o) => ago(o.created_at, now) },
    ], ops, 'No environment operation yet (handover env standby, clone or migrate).', { id: 'envs' })));
}

// abortable: what `handover env abort` accepts (the server has the last
// word): a standby under way, a clone not aborted yet, a migration before
// its drop (from the drop on, the source is going and there is nothing to
// go back to), and not already aborting.
const pastDrop = ['migrate-drop', 'migrate-retag', 'done'];
const abortable = (o) => o.state !== 'Aborted' && !o.aborting && (
  o.op === 'standby' ? running(o) && !(o.resume_requested && o.abort)
    : o.op === 'migrate' ? !pastDrop.includes(o.phase) && o.state !== 'Succeeded'
      : true);

function abortButton(o, refresh) {
  if (!abortable(o)) return null;
  const what = o.op === 'standby'
    ? 'Every instance comes back out of Standby and the groups\' capacities are restored exactly; the standby ends Aborted.'
    : o.op === 'migrate'
      ? `The entry listener is switched back to ${o.environment}'s target group (if it was switched), ${o.environment}'s fences are lifted, everything the migration and its clone made${o.migration ? ' in ' + o.migration.dest : ''} is deleted, and the source's inventory is checked unchanged. Writes the new environment acknowledged after the cutover are deleted with it.`
      : `The source is un-quiesced, everything the ${o.op} made${o.clone ? ' in ' + o.clone.dest : ''} is deleted, and the source's inventory is checked unchanged.`;
  return h('button', {
    type: 'button', class: 'danger', id: 'abort',
    onclick: async (e) => {
      const reason = await confirmAction({ title: `Abort the ${o.op} of ${o.environment}?`, body: what + ' This is what handover env abort does.', confirm: 'Abort', reasonLabel: 'Reason (logged by the controller)' });
      if (reason === null) return;
      e.target.disabled = true;
      try { await post('/v1/envs/' + encodeURIComponent(o.id) + '/abort', { reason: reason || 'aborted from the dashboard' }); } catch (err) { toast(err.message); }
      refresh();
    },
  }, 'Abort…');
}

function toast(msg) {
  const el = errorBox(msg);
  el.classList.add('toast');
  document.body.append(el);
  setTimeout(() => el.remove(), 8000);
}

export async function detail({ params: [id], width, now, refresh }) {
  const o = await get('/v1/envs/' + encodeURIComponent(id));
  const steps = o.timeline || [];
  const c = o.clone;
  const m = o.migration;
  const dest = c ? c.dest : m ? m.dest : '';
  const head = h('div', { class: 'title' }, h('h1', {}, `${o.op} of `, h('b', {}, o.environment), dest ? [' → ', h('b', {}, dest)] : ''),
    pill(o.state), running(o) ? h('span', { class: 'live-dot', title: 'live' }) : null, h('span', { class: 'spacer' }),
    o.aborting || (o.abort && running(o)) ? h('span', { class: 'pill warn' }, 'aborting') : null, abortButton(o, refresh));
  const quiesce = c && c.quiesced_at ? (Date.parse(c.unquiesced_at || '') || now) - Date.parse(c.quiesced_at) : null;
  const tiles = h('div', { class: 'tiles' },
    tile('Phase', o.phase || '–', o.resume_requested ? (o.abort ? 'abort requested' : 'resume requested') : ''),
    tile('Took', dur(took(o, now)), running(o) ? 'running' : `ended ${ago(o.ended_at, now)}`),
    quiesce !== null ? tile('Source writes paused', dur(quiesce), c.unquiesced_at ? 'quiesce to un-quiesce' : 'still quiesced', 'paused') : null,
    c && c.verify ? tile('Verify', c.verify.state, c.verify.mismatches ? `${c.verify.mismatches.length} mismatches` : 'no mismatch', c.verify.state === 'passed' ? 'good' : c.verify.state === 'failed' ? 'bad' : 'busy') : null,
    tile('Retries', num(o.attempts || 0), o.error ? 'last error below' : 'no error', o.error ? 'warn' : ''));

  const timeline = card('Steps', gantt(steps.map((s, i) => ({
    label: s.phase, start: Date.parse(s.start), note: s.note,
    end: s.end ? Date.parse(s.end) : (s.phase === 'done' ? Date.parse(s.start) : (i < steps.length - 1 ? Date.parse(steps[i + 1].start) : null)),
    cls: s.phase === 'done' ? 'end ' + o.state : '',
  })), { width: width - 34, now, band: quiesce !== null ? { from: Date.parse(c.quiesced_at), to: Date.parse(c.quiesced_at) + quiesce, label: `source writes paused ${dur(quiesce)}` } : null }));
  const notes = card('Step notes', table([
    { label: 'Step', cell: (s) => s.phase },
    { label: 'Start', cell: (s) => stamp(s.start) },
    { label: 'Note', cell: (s) => s.note || '' },
  ], steps, 'No steps yet.', { id: 'env-steps' }));

  const groups = card('Groups', table([
    { label: 'Group', cell: (g) => h('b', {}, g.name) },
    { label: 'Capacity before', cell: (g) => `min ${g.min} · max ${g.max} · desired ${g.desired}` },
    { label: 'Standby', cell: (g) => (g.standby || []).map((i) => h('span', { class: 'sig' }, instanceLink(i))) },
    { label: 'Back', cell: (g) => (g.exited || []).map((i) => h('span', { class: 'sig' }, instanceLink(i))) },
    { label: 'Restored', cell: (g) => (g.restored ? 'yes' : g.lowered_min ? `min lowered to ${g.lowered_to}` : 'no') },
  ], o.groups || [], 'No group.'));

  const items = c ? card('What the clone made', table([
    { label: 'Kind', cell: (i) => i.kind },
    { label: 'Name', cell: (i) => i.name },
    { label: 'Id', cell: (i) => (i.id ? h('code', { class: 'wrap' }, i.id) : '–') },
    { label: 'State', cell: (i) => pill(i.done ? 'ok' : i.started ? 'started' : 'recorded') },
    { label: 'Detail', cell: (i) => i.detail || '' },
  ], c.items || [], 'Nothing yet.')) : null;

  // A migration's own record: its clone is an operation of its own (its
  // page has what it made and its verify), the cutover is here.
  const migration = m ? card('Migration', h('div', { id: 'migration' }, kv([
    ['Into', h('b', {}, m.dest)],
    ['Clone', m.clone_op ? envLink(m.clone_op) : '–'],
    ['Entry listener', m.entry ? h('code', { class: 'wrap' }, m.entry) : '–'],
    ['Source target group', m.source_tg ? h('code', { class: 'wrap' }, m.source_tg) : '–'],
    ['Entry forwards to', m.entry_tg ? h('code', { class: 'wrap' }, m.entry_tg) : 'not yet made'],
    ['Verify', m.verified ? pill('pass') : m.verify_note ? [pill('fail'), ' ', m.verify_note] : 'not yet'],
    ['Switched', m.switched_at ? [stamp(m.switched_at), m.switched_back ? ' (switched back)' : ''] : m.switching ? 'switching' : 'not yet'],
    ['Bake', m.bake ? dur(m.bake / 1e6) : 'none'],
    ['Source fences lifted', m.lifted_at ? stamp(m.lifted_at) : 'held'],
    ['Buckets', m.delete_data ? 'emptied and deleted at the drop' : 'kept at the drop'],
    ['Source kept', m.source_kept || '–'],
    ['Names that stay', (m.unchanged || []).length ? h('ul', {}, m.unchanged.map((u) => h('li', {}, u))) : '–'],
  ]))) : null;

  const verify = c && c.verify ? card('Verify', [
    kv([['State', pill(c.verify.state)], ['Started', stamp(c.verify.started_at)], ['Ended', c.verify.ended_at ? stamp(c.verify.ended_at) : '']]),
    c.verify.mismatches && c.verify.mismatches.length ? h('ul', { class: 'mismatches' }, c.verify.mismatches.map((m) => h('li', {}, m))) : h('p', { class: 'muted' }, 'No mismatch.'),
    c.verify.report ? h('details', {}, h('summary', {}, 'Full report'), h('pre', { class: 'json' }, JSON.stringify(c.verify.report, null, 2))) : null,
  ]) : null;
  const compared = c && (c.manifests || c.objects) ? card('What verify compares', table([
    { label: 'What', cell: (x) => x.what },
    { label: 'Of', cell: (x) => x.of },
    { label: 'Count', cell: (x) => x.count, cls: 'num' },
    { label: 'Digest', cell: (x) => (x.digest ? h('code', { class: 'wrap' }, x.digest.slice(0, 16) + '…') : x.error || '–') },
  ], [...(c.manifests || []).map((m) => ({ what: 'volume manifest', of: m.database, count: `${num(m.files)} files, ${num(m.bytes)} B`, digest: m.hash, error: m.error })),
    ...(c.objects || []).map((b) => ({ what: 'bucket objects', of: `${b.from} → ${b.bucket}`, count: num(b.count), digest: b.digest }))])) : null;

  return h('div', { class: 'page' }, h('p', { class: 'crumbs' }, h('a', { href: '#/envs' }, 'Environments'), ' / ', o.id),
    head, tiles, o.error ? card('Last error', errorBox(o.error), null, 'alert') : null, timeline, migration, notes, groups, items, verify, compared);
}
