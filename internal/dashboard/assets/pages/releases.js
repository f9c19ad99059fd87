// Releases: each channel's latest and previous release, and every
// release with its snapshot and manifest.
import { get } from '../api.js';
import { h, card, table, pill, ago, num } from '../ui.js';

const bytes = (n) => {
  if (!n) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${u[i]}`;
};

export async function render({ now }) {
  const { channels, releases } = await get('/v1/releases');
  const byChannel = (ch) => releases.filter((r) => r.channel === ch).sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  return h('div', { class: 'page' }, h('h1', {}, 'Releases'),
    channels.length === 0 ? card('Channels', h('p', { class: 'empty' }, 'No release channel yet: handover release publish --channel NAME starts one.')) : null,
    channels.map((c) => card(['Channel ', h('b', {}, c.id)], [
      h('div', { class: 'tiles' },
        h('div', { class: 'tile good' }, h('div', { class: 'tile-label' }, 'Latest: every instance runs it'), h('div', { class: 'tile-value' }, c.latest || '–'), h('div', { class: 'tile-sub' }, h('code', {}, c.latest_snapshot || ''))),
        h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, 'Previous: a failed rollout goes back to it'), h('div', { class: 'tile-value' }, c.previous || '–'), h('div', { class: 'tile-sub' }, `updated ${ago(c.updated_at, now)}`))),
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
