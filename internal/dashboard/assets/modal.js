// A confirmation dialog in the page (window.confirm would block the page's
// polling and cannot carry a reason).
import { h } from './ui.js';

// confirmAction resolves to the reason typed (possibly '') on confirm, and
// to null on cancel.
export function confirmAction({ title, body, confirm = 'Confirm', reasonLabel }) {
  const root = document.getElementById('modal');
  return new Promise((resolve) => {
    const reason = reasonLabel ? h('input', { id: 'modal-reason', type: 'text', placeholder: 'optional' }) : null;
    const close = (v) => { root.hidden = true; root.replaceChildren(); document.removeEventListener('keydown', onKey); resolve(v); };
    const onKey = (e) => { if (e.key === 'Escape') close(null); };
    document.addEventListener('keydown', onKey);
    root.replaceChildren(h('div', { class: 'dialog card', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'modal-title' },
      h('h2', { id: 'modal-title' }, title),
      h('p', {}, body),
      reason ? [h('label', { for: 'modal-reason' }, reasonLabel), reason] : null,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'quiet', id: 'modal-cancel', onclick: () => close(null) }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', id: 'modal-confirm', onclick: () => close(reason ? reason.value : '') }, confirm))));
    root.hidden = false;
    (reason || root.querySelector('#modal-cancel')).focus();
  });
}
