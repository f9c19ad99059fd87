// The access-log pipeline as the controller watches it: throughput, lag,
// retries and dead letters, over the last half hour.
import { get } from '../api.js';
import { h, card, table, kv, dur, ago, num, tile, errorBox } from '../ui.js';
import { line } from '../charts.js';

// rates turns counter samples into per-interval rates; a counter that went
// down (the pipeline restarted) starts a new run instead of a negative rate.
function rates(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = (Date.parse(b.at) - Date.parse(a.at)) / 1000;
    if (dt <= 0 || b.lines < a.lines) continue;
    const dc = b.lag_count - a.lag_count;
    out.push({
      at: Date.parse(b.at), lines: (b.lines - a.lines) / dt, bytes: (b.bytes - a.bytes) / dt,
      retries: Math.max(0, b.retries - a.retries) / dt, lag: dc > 0 ? (b.lag_sum_seconds - a.lag_sum_seconds) / dc : null,
    });
  }
  return out;
}

const perSec = (v) => (v === 0 ? '0' : v >= 100 ? num(Math.round(v)) : v.toFixed(v >= 10 ? 1 : 2)) + '/s';

export async function render({ width, now }) {
  const lg = await get('/v1/logs');
  if (!lg.configured) {
    return h('div', { class: 'page' }, h('h1', {}, 'Log pipeline'), card('Not watched', [
      h('p', {}, 'This controller does not watch an access-log pipeline. Start it with the pipeline\'s metrics and dead-letter queue:'),
      h('pre', { class: 'json' }, 'handover controller … \\\n  --logs-metrics-url http://HOST:9108/metrics \\\n  --logs-dead-letter-queue-url https://sqs…/elb-logs-dead'),
      h('p', { class: 'muted' }, 'where handover logs run serves --metrics-addr HOST:9108 and sends its dead letters to --dlq-url.'),
    ]));
  }
  const s = lg.samples;
  const last = s[s.length - 1];
  const r = rates(s);
  const recent = r.filter((x) => x.at > (r.length ? r[r.length - 1].at : 0) - 30000);
  const avg = (xs, f) => (xs.length ? xs.reduce((a, x) => a + f(x), 0) / xs.length : 0);
  const lags = r.filter((x) => x.lag !== null);
  const lastLag = lags.length ? lags[lags.length - 1].lag : (last && last.lag_count ? last.lag_sum_seconds / last.lag_count : null);
  const dq = lg.dead_letter_queue;

  const tiles = h('div', { class: 'tiles' },
    tile('Lines per second', h('span', { id: 'lines-rate' }, perSec(avg(recent, (x) => x.lines))), last ? `${num(last.lines)} lines in all${lg.error ? ', at the last reading' : ''}` : 'no reading yet', 'busy'),
    tile('Lag', lastLag === null ? '–' : dur(lastLag * 1000), 'S3 event to last line indexed', lastLag > 300 ? 'warn' : ''),
    tile('Retries', last ? num(last.retries) : '–', `${perSec(avg(recent, (x) => x.retries))} now · bulk items sent again`, last && last.retries ? 'warn' : ''),
    tile('Dead letters', last ? num(last.dead_letters) : '–', dq ? (dq.error ? 'DLQ unreadable' : `${num(dq.visible + dq.in_flight)} in the queue`) : 'no DLQ given', (last && last.dead_letters) || (dq && dq.visible) ? 'bad' : 'good'),
    tile('Indexed', last ? num(last.indexed) : '–', last ? `${num(last.duplicates)} duplicates · ${num(last.objects)} objects` : ''));

  const cw = width - 34;
  const throughput = card('Throughput', line([{ name: 'lines/s', points: r.map((x) => [x.at, x.lines]) }], { width: cw, fmt: perSec }), h('span', { class: 'muted' }, `${r.length + 1} readings over ${dur(r.length ? r[r.length - 1].at - r[0].at : 0)}`));
  const lagChart = card('Lag', line([{ name: 'lag', points: lags.map((x) => [x.at, x.lag]) }], { width: cw, fmt: (v) => dur(v * 1000), empty: 'No object indexed in the readings yet.' }));

  const causes = Object.entries((last && last.dead_letters_by_cause) || {}).filter(([, n]) => n > 0);
  const dead = card('Dead letters', [
    causes.length ? kv(causes.map(([c, n]) => [c, num(n)])) : h('p', { class: 'empty' }, 'None since the pipeline started.'),
    h('h3', {}, 'Most recent in the dead-letter queue'),
    lg.dead_letter_error ? errorBox(lg.dead_letter_error) : null,
    table([
      { label: 'Sent', cell: (d) => ago(d.sent_at, now) },
      { label: 'Cause', cell: (d) => d.cause || '–' },
      { label: 'Reason', cell: (d) => h('span', { class: 'why' }, d.reason) },
      { label: 'Object', cell: (d) => (d.key ? h('code', { class: 'wrap' }, `s3://${d.bucket}/${d.key}${d.offset >= 0 ? ' @' + d.offset : ''}`) : '–') },
    ], lg.recent_dead_letters, 'The dead-letter queue is empty.', { id: 'dead-letters' }),
  ]);

  return h('div', { class: 'page' }, h('h1', {}, 'Log pipeline'),
    lg.error ? card('The pipeline is not reachable now', [errorBox(lg.error), last ? h('p', { class: 'muted' }, `The figures below are from the last reading, ${ago(last.at, now)}.`) : null], null, 'alert') : null,
    tiles, throughput, lagChart, dead,
    h('p', { class: 'muted' }, 'metrics from ', h('code', {}, lg.metrics_url || '–'), dq ? [' · dead letters from ', h('code', { class: 'wrap' }, dq.url)] : ''));
}
