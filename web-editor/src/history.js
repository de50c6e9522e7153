// The history panel: named versions first, then the sessions (one author's edits close together),
// a slider over them that shows the document as it was at each, read-only, with what changed since
// the mark before highlighted; who wrote what (authors), a comparison of any two points, restore
// and "save version". It reads the server's HTTP API through the document handle (@tandem/client's
// doc.history), so it shows what the server has logged.
import { colorFor } from '@tandem/client';
import { el } from './dom.js';

const fmt = (ms) => (ms ? new Date(ms).toLocaleString() : '');
const REFRESH_MS = 1000;

// doc: the TandemDocument; column: the element holding the editor (the preview covers it);
// restoreTo(point): makes the document what it was at that point as one undoable step of the
// editor, by this page's own agent; resolves to false when nothing differed.
export function historyPanel({ doc, column, restoreTo }) {
  const toggle = el('button', { type: 'button', class: 'history-toggle', testid: 'history-toggle', 'aria-expanded': 'false',
                                title: 'Who wrote what, past versions, restore' }, 'History');
  const message = el('p', { class: 'history-message', testid: 'history-message', role: 'status' });
  const versions = el('ul', { class: 'versions', testid: 'versions' });
  const sessions = el('ul', { class: 'sessions', testid: 'sessions' });
  const slider = el('input', { type: 'range', min: '0', max: '0', value: '0', step: '1', testid: 'history-slider',
                               'aria-label': 'point in the history' });
  const pointLabel = el('p', { class: 'history-point', testid: 'history-point' });
  const authors = el('input', { type: 'checkbox', testid: 'authors-toggle' });
  const save = el('button', { type: 'button', testid: 'save-version' }, 'Save version…');
  const restore = el('button', { type: 'button', testid: 'restore', disabled: '' }, 'Restore this version');
  const compareFrom = el('select', { testid: 'compare-from', 'aria-label': 'compare from' });
  const compareTo = el('select', { testid: 'compare-to', 'aria-label': 'compare to' });
  const compare = el('button', { type: 'button', testid: 'compare' }, 'Compare');
  const close = el('button', { type: 'button', class: 'history-close', testid: 'history-close', title: 'Close' }, '×');
  const panel = el('aside', { class: 'history', testid: 'history-panel', hidden: '' },
                   el('div', { class: 'history-head' }, el('h2', {}, 'History'), close),
                   el('div', { class: 'history-tools' }, el('label', {}, authors, ' Authors'), save),
                   message,
                   el('h3', {}, 'Versions'), versions,
                   el('h3', {}, 'Changes'), slider, pointLabel, restore,
                   el('div', { class: 'compare' }, compareFrom, compareTo, compare),
                   sessions);
  const viewText = el('div', { class: 'history-text', testid: 'history-text' });
  const exit = el('button', { type: 'button', testid: 'history-exit' }, 'Back to editing');
  const viewTitle = el('span', { testid: 'history-view-title' });
  const view = el('div', { class: 'history-view', testid: 'history-view', hidden: '' },
                  el('div', { class: 'history-view-bar' }, viewTitle, exit), viewText);
  column.append(view);

  // Points of the slider: 0, then every session's end, oldest first (logged-event counts).
  let points = [0];
  let sessionAt = new Map();  // point -> the session ending there
  let named = [];
  let open = false;
  let refreshTimer = null;
  let shown = null;  // what the preview shows: {kind: 'point', at} | {kind: 'compare'} | {kind: 'authors'}

  // A writer as people here know them: the name and caret colour of whoever is here as that
  // agent (or this person), else the agent's own name.
  const person = (agent) => {
    if (agent === doc.agent) return { name: `${doc.me.name || 'you'} (you)`, color: doc.color() };
    const p = doc.peers().find((x) => x.agent === agent);
    return p ? { name: p.name, color: p.color } : { name: agent, color: colorFor(agent.split('/')[0]) };
  };
  const writer = (s) => (s.agents.length === 1 ? person(s.agents[0]) : { name: s.author, color: colorFor(s.author) });
  const say = (text, error = false) => {
    message.textContent = text;
    message.classList.toggle('error', error);
  };
  const fail = (e) => say(e.message || String(e), true);

  function pointName(p) {
    const v = named.find((x) => x.events === p);
    if (v) return `“${v.name}”`;
    const s = sessionAt.get(p);
    if (s) return `${writer(s).name}, ${fmt(s.last_ms)}`;
    return p === 0 ? 'the empty start' : `after ${p} changes`;
  }

  async function refresh() {
    if (!open) return;
    try {
      const h = await doc.history.sessions({ limit: 500 });
      named = h.versions ?? [];
      const list = [...h.sessions].reverse();  // oldest first
      points = [0, ...new Set(list.map((s) => s.to))].sort((a, b) => a - b);
      for (const v of named) if (!points.includes(v.events)) points.push(v.events);
      points.sort((a, b) => a - b);
      sessionAt = new Map(list.map((s) => [s.to, s]));
      const atEnd = Number(slider.value) >= Number(slider.max);
      slider.max = String(points.length - 1);
      if (atEnd || shown?.kind !== 'point') slider.value = slider.max;
      versions.replaceChildren(...(named.length ? named.map((v) => {
        const li = el('li', { class: 'version', 'data-events': String(v.events) },
                      el('button', { type: 'button', class: 'link' }, v.name), ' ',
                      el('span', { class: 'meta' }, `${v.agent ? person(v.agent).name : 'someone'} · ${fmt(v.time_ms)}`));
        li.querySelector('button').addEventListener('click', () => showPoint(points.indexOf(v.events)));
        return li;
      }) : [el('li', { class: 'note' }, 'No saved versions yet.')]));
      sessions.replaceChildren(...h.sessions.map((s) => {
        const w = writer(s);
        const li = el('li', { class: 'session', 'data-to': String(s.to), title: s.agents.join(', ') },
                      el('span', { class: 'dot', style: `background:${w.color}` }),
                      el('button', { type: 'button', class: 'link' }, w.name), ' ',
                      el('span', { class: 'meta' }, `${fmt(s.last_ms)} · +${s.inserted} −${s.deleted}${s.formatted ? ` ~${s.formatted}` : ''}`));
        li.querySelector('button').addEventListener('click', () => showPoint(points.indexOf(s.to)));
        return li;
      }));
      const options = () => points.map((p) => el('option', { value: String(p) }, pointName(p)));
      const [f, t] = [compareFrom.value, compareTo.value];
      compareFrom.replaceChildren(...options());
      compareTo.replaceChildren(...options());
      compareFrom.value = f !== '' && points.includes(Number(f)) ? f : String(points[0]);
      compareTo.value = t !== '' && points.includes(Number(t)) ? t : String(points[points.length - 1]);
      pointLabel.textContent = pointName(points[Number(slider.value)]);
      say(h.sessions.length ? '' : 'Nothing has been saved to the server yet.');
    } catch (e) {
      fail(e);
    }
  }

  // The preview: runs of a diff (kept, inserted, deleted) or of a blame (each author's colour).
  function showRuns(runs) {
    viewText.replaceChildren(...runs.map((r) => {
      const tag = r.kind === 'inserted' ? 'ins' : r.kind === 'deleted' ? 'del' : 'span';
      const e = el(tag, { class: `run ${r.kind ?? 'author'}` }, r.text);
      if (r.agent) e.dataset.agent = r.agent;
      if (r.title) e.title = r.title;
      if (r.color) e.style.background = r.color;
      return e;
    }));
    view.hidden = false;
    column.classList.add('previewing');
  }
  function hidePreview() {
    shown = null;
    view.hidden = true;
    column.classList.remove('previewing');
    restore.disabled = true;
    authors.checked = false;
  }

  async function showPoint(i) {
    if (i < 0) return;
    slider.value = String(i);
    const at = points[i];
    const before = points[Math.max(0, i - 1)];
    pointLabel.textContent = pointName(at);
    shown = { kind: 'point', at };
    restore.disabled = !doc.writable;
    try {
      const d = await doc.history.diff(before, at);
      if (shown?.at !== at) return;  // the slider moved on meanwhile
      viewTitle.textContent = `As it was: ${pointName(at)} (changes since ${pointName(before)} marked)`;
      showRuns(d.runs.map((r) => ({ ...r, title: r.kind === 'kept' ? '' : `${r.kind} by ${r.agents.join(', ')}` })));
    } catch (e) {
      fail(e);
    }
  }

  async function showAuthors() {
    shown = { kind: 'authors' };
    restore.disabled = true;
    try {
      const b = await doc.history.blame();
      const cps = Array.from(await doc.history.textAt(String(b.events)));
      const runs = b.spans.map((s) => ({ text: cps.slice(s.from, s.to).join(''), title: `${person(s.agent).name} · ${fmt(s.time_ms)}`,
                                          agent: s.agent, color: `${person(s.agent).color}33` }));
      viewTitle.textContent = 'Who wrote what (hover for the time)';
      showRuns(runs);
    } catch (e) {
      fail(e);
    }
  }

  function setOpen(on) {
    open = on;
    panel.hidden = !on;
    toggle.setAttribute('aria-expanded', String(on));
    column.parentElement?.classList.toggle('history-open', on);
    if (on) refresh();
    else hidePreview();
  }

  toggle.addEventListener('click', () => setOpen(!open));
  close.addEventListener('click', () => setOpen(false));
  exit.addEventListener('click', hidePreview);
  slider.addEventListener('input', () => showPoint(Number(slider.value)));
  authors.addEventListener('change', () => (authors.checked ? showAuthors() : hidePreview()));
  compare.addEventListener('click', async () => {
    shown = { kind: 'compare' };
    restore.disabled = true;
    try {
      const [from, to] = [compareFrom.value, compareTo.value];
      const d = await doc.history.diff(from, to);
      viewTitle.textContent = `${pointName(Number(from))} → ${pointName(Number(to))}`;
      showRuns(d.runs.map((r) => ({ ...r, title: r.kind === 'kept' ? '' : `${r.kind} by ${r.agents.join(', ')}` })));
    } catch (e) {
      fail(e);
    }
  });
  save.addEventListener('click', async () => {
    const name = window.prompt('Name this version (for example “sent to the client”):');
    if (!name) return;
    try {
      // Own edits first: the name covers what this person sees.
      await waitSaved(doc);
      const v = await doc.history.saveVersion(name.trim());
      say(`Saved “${v.name}”.`);
      refresh();
    } catch (e) {
      fail(e.code === 'name_taken' ? new Error(`There is a version named “${name.trim()}” already.`) : e);
    }
  });
  restore.addEventListener('click', async () => {
    if (shown?.kind !== 'point') return;
    const at = shown.at;
    try {
      const changed = await restoreTo(at);
      hidePreview();
      say(changed ? `Restored ${pointName(at)}; undo takes it back.` : 'The document already is that version.');
    } catch (e) {
      fail(e);
    }
  });
  // Others' edits, and one's own once the server has them, add to the history.
  const later = () => {
    if (!open) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, REFRESH_MS);
  };
  doc.on('change', later);
  doc.on('unsent', (n) => { if (n === 0) later(); });
  return { toggle, panel };
}

// Resolves once nothing of this handle's is unsent (or after 10 s).
function waitSaved(doc) {
  return new Promise((resolve) => {
    if (doc.unsent() === 0) return resolve();
    const until = Date.now() + 10000;
    const off = doc.on('unsent', () => {
      if (doc.unsent() === 0) done();
    });
    const timer = setInterval(() => { if (Date.now() > until) done(); }, 200);
    function done() {
      clearInterval(timer);
      off();
      resolve();
    }
  });
}
