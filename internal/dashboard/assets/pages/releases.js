// Releases: each channel's latest and previous release, which release
// each instance runs and how far the rollout to the latest is, and every
// release with its snapshot and manifest.
import { get } from '../api.js';
import { h, card, table, pill, ago, num, instanceLink, volumeLink, errorBox, clock } from '../ui.js';

const bytes = (n) => {
  if (!n) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${u[i]}`;
};

export async function render({ now }) {
  const [{ channels, releases, instances }, lss] = await Promise.all([get('/v1/releases'), get('/v1/leases').catch(() => ({ leases: [] }))]);
  const insts = (ch) => (instances || []).find((i) => i.channel === ch);
  const lease = (ch) => lss.leases.find((l) => l.name === 'release-channel/' + ch);
  const byChannel = (ch) => releases.filter((r) => r.channel === ch).sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  return h('div', { class: 'page' }, h('h1', {}, 'Releases'),
    channels.length === 0 ? card('Channels', h('p', { class: 'empty' }, 'No release channel yet: handover release publish --channel NAME starts one.')) : null,
    channels.map((c) => card(['Channel ', h('b', {}, c.id)], [
      h('div', { class: 'tiles' },
        h('div', { class: 'tile good' }, h('div', { class: 'tile-label' }, 'Latest: every instance is to run it'), h('div', { class: 'tile-value' }, c.latest || '–'), h('div', { class: 'tile-sub' }, h('code', {}, c.latest_snapshot || ''))),
        h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, 'Previous: a failed rollout goes back to it'), h('div', { class: 'tile-value' }, c.previous || '–'), h('div', { class: 'tile-sub' }, `updated ${ago(c.updated_at, now)}`)),
        rolloutTile(c, insts(c.id), lease(c.id), now)),
      instanceTable(c, insts(c.id)),
      table([
        { label: 'Release', cell: (r) => h('b', {}, r.name) },
        { label: 'State', cell: (r) => pill(r.name === c.latest ? 'latest' : r.state) },
        { label: 'Snapshot', cell: (r) => (r.snapshot_id ? h('code', {}, r.snapshot_id) : '–') },
        { label: 'Manifest', cell: (r) => (r.manifest_hash ? h('code', { title: r.manifest_hash }, r.manifest_hash.slice(0, 12) + '…') : '–') },
        { label: 'Files', cell: (r) => num(r.files), cls: 'num' },
        { label: 'Size', cell: (r) => bytes(r.bytes), cls: 'num' },
        { label: 'Published', cell: (r) => (r.published_at ? ago(r.published_at, now) : r.error || '–') },
        { label: 'By', cell: (r) => r.publisher || '–' },
      ], byChannel(c.id), 'No release yet.', { class: 'releases' }),
    ], h('span', { class: 'muted' }, `${byChannel(c.id).length} releases`))));
}

// rolloutTile: how far the channel's in-service instances are on its
// latest release (an instance with two release volumes is switching), and
// who holds the channel's lease (a publish, a rollback, or the release
// controller finishing one) while one runs.
function rolloutTile(c, ci, l, now) {
  if (!ci) return null;
  // An instance with no release volume has releases null.
  ci.instances.forEach((i) => { i.releases = i.releases || []; i.volumes = i.volumes || []; });
  const live = ci.instances.filter((i) => i.lifecycle === 'InService');
  const on = live.filter((i) => i.releases.length === 1 && i.releases[0] === c.latest).length;
  const switching = live.filter((i) => i.releases.length > 1).length;
  const cls = ci.error ? 'warn' : on === live.length ? 'good' : 'busy';
  const sub = l ? ['rolling out: ', h('code', {}, l.holder), ` holds the channel until ${clock(l.expires)}`]
    : on === live.length ? 'converged' : `${live.length - on} behind, no rollout running`;
  return h('div', { class: 'tile ' + cls, id: 'rollout-' + c.id },
    h('div', { class: 'tile-label' }, `Rollout of ${c.latest || '–'}`),
    h('div', { class: 'tile-value' }, `${on} of ${live.length} in service`),
    h('div', { class: 'tile-sub' }, sub, switching ? ` · ${switching} switching` : ''));
}

// instanceTable: which release each instance of the channel runs, from
// the release volumes attached to it.
function instanceTable(c, ci) {
  if (!ci) return null;
  ci.instances.forEach((i) => { i.releases = i.releases || []; i.volumes = i.volumes || []; });
  return [ci.error ? errorBox(ci.error) : null, table([
    { label: 'Instance', cell: (i) => instanceLink(i.instance) },
    { label: 'Group', cell: (i) => i.group },
    { label: 'Lifecycle', cell: (i) => i.lifecycle },
    { label: 'Runs', cell: (i) => (i.releases.length ? i.releases.map((r) => h('span', { class: 'pill ' + (r === c.latest ? 'good' : 'idle') }, r === c.latest ? `${r} (latest)` : r)) : h('span', { class: 'muted' }, 'no release volume')) },
    { label: 'Release volumes', cell: (i) => (i.volumes || []).map((v) => volumeLink(v)) },
  ], ci.instances, 'No instance in the channel\'s groups.', { class: 'release-instances', id: 'instances-' + c.id })];
}
