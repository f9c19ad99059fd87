// The dashboard: a hash router over pages that each read the /v1 API and
// return their content; the current page is read again every 2 s.
import { AuthError, setToken, token } from './api.js';
import { h, clock, errorBox } from './ui.js';
import * as overview from './pages/overview.js';
import * as handovers from './pages/handovers.js';
import * as updates from './pages/updates.js';
import * as envs from './pages/envs.js';
import * as releases from './pages/releases.js';
import * as logs from './pages/logs.js';
import * as replicas from './pages/replicas.js';

const routes = [
  [/^\/?$/, overview.render, 'overview'],
  [/^\/handovers$/, handovers.list, 'handovers'],
  [/^\/handover\/(.+)$/, handovers.detail, 'handovers'],
  [/^\/instance\/(.+)$/, handovers.resource('instance'), 'handovers'],
  [/^\/volume\/(.+)$/, handovers.resource('volume'), 'handovers'],
  [/^\/updates$/, updates.list, 'updates'],
  [/^\/update\/(.+)$/, updates.detail, 'updates'],
  [/^\/envs$/, envs.list, 'envs'],
  [/^\/env\/(.+)$/, envs.detail, 'envs'],
  [/^\/releases$/, releases.render, 'releases'],
  [/^\/logs$/, logs.render, 'logs'],
  [/^\/replicas$/, replicas.render, 'replicas'],
];

const POLL_MS = 2000;
const main = document.getElementById('main');
const login = document.getElementById('login');
const live = document.getElementById('live');
let generation = 0;
let timer = 0;

function route() {
  const path = decodeURI(location.hash.replace(/^#/, '')) || '/';
  for (const [re, render, nav] of routes) {
    const m = path.match(re);
    if (m) return { render, nav, params: m.slice(1).map(decodeURIComponent) };
  }
  return { render: () => h('div', {}, errorBox(`No page ${path}.`), h('a', { href: '#/' }, 'Back to the overview')), nav: '', params: [] };
}

function contentWidth() {
  const cs = getComputedStyle(main);
  return Math.max(280, main.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight));
}

async function refresh() {
  const gen = ++generation;
  clearTimeout(timer);
  const r = route();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('on', a.dataset.page === r.nav);
  try {
    const node = await r.render({ params: r.params, width: contentWidth(), now: Date.now(), refresh });
    if (gen !== generation) return;
    login.hidden = true;
    main.hidden = false;
    document.getElementById('signout').hidden = !token();
    main.replaceChildren(node);
    delete main.dataset.error;
    live.className = 'live on';
    live.textContent = 'live · ' + clock(new Date());
  } catch (e) {
    if (gen !== generation) return;
    if (e instanceof AuthError) return showLogin(e.message);
    live.className = 'live off';
    live.textContent = 'not reachable';
    if (!main.firstChild || main.dataset.error) {
      main.replaceChildren(errorBox(e.message));
      main.dataset.error = '1';
    }
  }
  timer = setTimeout(refresh, POLL_MS);
}

function showLogin(message) {
  clearTimeout(timer);
  main.hidden = true;
  main.replaceChildren();
  login.hidden = false;
  const err = document.getElementById('login-error');
  err.hidden = !token();
  err.textContent = message;
  live.className = 'live off';
  live.textContent = 'signed out';
  document.getElementById('token').focus();
}

document.getElementById('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token');
  setToken(input.value.trim());
  input.value = '';
  refresh();
});
document.getElementById('signout').addEventListener('click', () => { setToken(''); showLogin(''); });
window.addEventListener('hashchange', () => { delete main.dataset.error; main.replaceChildren(); window.scrollTo(0, 0); refresh(); });
let resizeTimer = 0;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(refresh, 150); });

// A link printed by `handover demo --dashboard` carries the token in the
// fragment (never sent to the server): keep it for this tab, then drop it
// from the address bar and the history.
const m = location.hash.match(/^#token=([^&]*)/);
if (m) {
  setToken(decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + '#/');
}
refresh();
