// Read replicas the controller watches (--replica): state and lag over
// time, from `handover replica status`'s reading.
import { get } from '../api.js';
import { h, card, kv, pill, dur, ago, num, tile, errorBox } from '../ui.js';
import { line } from '../charts.js';

const bytes = (n) => (n < 1024 ? `${Math.round(n)} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`);

export async function render({ width, now }) {
  const { replicas } = await get('/v1/replicas');
  if (!replicas.length) {
    return h('div', { class: 'page' }, h('h1', {}, 'Read replicas'), card('Not watched', [
      h('p', {}, 'This controller watches no read replica. Name each one, with the primary\'s master password, to chart its lag:'),
      h('pre', { class: 'json' }, 'handover controller … --replica orders-rr \\\n  --replica-master-password-file master.pw'),
    ]));
  }
  const cw = width - 34;
  return h('div', { class: 'page' }, h('h1', {}, 'Read replicas'), replicas.map((r) => {
    const st = r.status || {};
    const last = r.samples[r.samples.length - 1];
    return card(['Replica ', h('b', {}, r.id), st.source ? [' of ', h('b', {}, st.source)] : ''], [
      r.error ? errorBox(r.error) : null,
      h('div', { class: 'tiles' },
        tile('State', st.state || '–', st.replication || '', st.state === 'available' ? 'good' : 'warn'),
        tile('Lag', last ? dur(last.lag_seconds * 1000) : '–', 'since the last replayed commit', last && last.lag_seconds > 30 ? 'warn' : ''),
        tile('Behind by', last ? bytes(last.lag_bytes) : '–', 'of WAL'),
        tile('Sender', st.sender_state || '–', st.replay_lag_seconds !== undefined && st.replay_lag_seconds !== null ? `replay lag ${dur(st.replay_lag_seconds * 1000)} (the primary's view)` : '')),
      h('h3', {}, 'Lag over time'),
      line([{ name: 'seconds behind', points: r.samples.map((x) => [Date.parse(x.at), x.lag_seconds]) }], { width: cw, fmt: (v) => dur(v * 1000) }),
      h('h3', {}, 'WAL behind'),
      line([{ name: 'bytes behind', cls: 's1', points: r.samples.map((x) => [Date.parse(x.at), x.lag_bytes]) }], { width: cw, fmt: bytes }),
      kv([['Primary LSN', st.primary_lsn ? h('code', {}, st.primary_lsn) : ''], ['Replay LSN', st.replay_lsn ? h('code', {}, st.replay_lsn) : ''],
        ['Checked', st.checked_at ? ago(st.checked_at, now) : ''], ['Readings', num(r.samples.length)]]),
    ], null, 'replica');
  }));
}
