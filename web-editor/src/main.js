// The Tandem web editor: `/` picks a document, `/d/<doc-id>` edits it (docs/protocol.md).
// The sync client, engine loading, offline store and presence come from the @tandem/client
// package (clients/js); this file is the pages around them.
import { EditorState } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, drawSelection, highlightActiveLine } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import createEngine from 'tandem-engine';
import { openDocument, colorFor, DOC_ID } from '@tandem/client';
import { tandemSync } from '@tandem/client/codemirror';

const RECENT_KEY = 'tandem-recent';
const NAME_KEY = 'tandem-name';

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'testid') e.dataset.testid = v;
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function randomHex(n) {
  const b = crypto.getRandomValues(new Uint8Array(n / 2));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function recent() {
  try {
    const r = JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(r) ? r.filter((x) => typeof x?.id === 'string' && DOC_ID.test(x.id)) : [];
  } catch {
    return [];
  }
}

function remember(id) {
  const list = [{ id, at: Date.now() }, ...recent().filter((x) => x.id !== id)].slice(0, 20);
  localStorage.setItem(RECENT_KEY, JSON.stringify(list));
}

// ---- `/`: the document picker ------------------------------------------------------------------

function picker(root) {
  document.title = 'Tandem';
  const input = el('input', { testid: 'doc-name', placeholder: 'document name, e.g. meeting-notes', autofocus: '' });
  const error = el('p', { class: 'error', testid: 'picker-error' });
  const open = (name) => {
    if (!DOC_ID.test(name)) {
      error.textContent = 'A document name is 1 to 128 letters, digits, dots, dashes or underscores.';
      return;
    }
    location.href = `/d/${encodeURIComponent(name)}`;
  };
  const form = el('form', {}, input, el('button', { type: 'submit' }, 'Open'),
                  el('button', { type: 'button', testid: 'new-doc' }, 'New document'));
  form.addEventListener('submit', (e) => { e.preventDefault(); open(input.value.trim()); });
  form.querySelector('[data-testid=new-doc]').addEventListener('click', () => open(`doc-${randomHex(8)}`));
  const list = el('ul', { testid: 'recent' });
  for (const r of recent()) {
    list.append(el('li', {}, el('a', { href: `/d/${r.id}` }, r.id), ' ', el('time', {}, new Date(r.at).toLocaleString())));
  }
  root.append(el('div', { class: 'picker' }, el('h1', {}, 'Tandem'), form, error,
                 el('h2', {}, 'Recent documents'), recent().length ? list : el('p', {}, 'None yet.')));
}

// ---- `/d/<doc-id>`: the editor -----------------------------------------------------------------

// The access token a server with auth wants: given once as /d/<doc>?token=..., kept for this tab
// (sessionStorage) and taken out of the address bar, where it would be shared with the link.
function pageToken() {
  const params = new URLSearchParams(location.search);
  const given = params.get('token');
  if (given) {
    sessionStorage.setItem('tandem-token', given);
    params.delete('token');
    const rest = params.toString();
    window.history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
    return given;
  }
  return sessionStorage.getItem('tandem-token') || '';
}

async function editor(root, docId) {
  document.title = `${docId} · Tandem`;
  remember(docId);
  const status = el('span', { testid: 'status', class: 'status offline' }, 'connecting');
  const unsent = el('span', { testid: 'unsent', class: 'unsent' });
  const nameInput = el('input', { testid: 'name', placeholder: 'your name', maxlength: '40' });
  const people = el('ul', { testid: 'people' });
  const count = el('span', { class: 'count', testid: 'people-count' }, '1');
  // On a narrow screen the list of who is here folds away behind this button.
  const toggle = el('button', { type: 'button', class: 'people-toggle', testid: 'people-toggle',
                                'aria-expanded': 'false', title: 'Who is here' }, 'Here ', count);
  const host = el('div', { class: 'editor' });
  const aside = el('aside', { testid: 'people-panel' }, el('h2', {}, 'Here'), people);
  const main = el('main', {}, host, aside);
  root.append(
    el('header', {}, el('a', { href: '/', class: 'home' }, 'Tandem'), el('span', { class: 'doc', testid: 'doc-id' }, docId),
       status, unsent, el('label', {}, el('span', { class: 'name-label' }, 'Name '), nameInput), toggle),
    main);
  toggle.addEventListener('click', () => {
    const open = main.classList.toggle('people-open');
    toggle.setAttribute('aria-expanded', String(open));
  });

  const doc = await openDocument({ engine: createEngine, docId, token: pageToken() });
  const agent = doc.agent;
  let myName = localStorage.getItem(NAME_KEY) || `guest-${agent.slice(-4)}`;
  nameInput.value = myName;

  const showStatus = (s, detail) => {
    status.textContent = s;
    status.className = `status ${s}`;
    status.title = detail || '';
  };
  const showPeople = () => {
    const peers = doc.peers();
    people.replaceChildren(el('li', { class: 'me' }, el('span', { class: 'dot', style: `background:${colorFor(myName)}` }), `${myName} (you)`));
    for (const p of peers) {
      people.append(el('li', {}, el('span', { class: 'dot', style: `background:${p.color}` }), p.name));
    }
    count.textContent = String(peers.length + 1);
  };
  const showUnsent = () => {
    const n = doc.unsent();
    unsent.textContent = n ? `${n} unsent` : 'all saved';
    unsent.dataset.count = String(n);
  };
  doc.on('status', showStatus);
  doc.on('presence', showPeople);
  doc.on('unsent', showUnsent);
  doc.setPresence({ name: myName, color: colorFor(myName) });

  const view = new EditorView({
    parent: host,
    state: EditorState.create({
      doc: doc.text(),
      extensions: [
        lineNumbers(), drawSelection(), highlightActiveLine(), history(), EditorView.lineWrapping,
        keymap.of([...defaultKeymap, ...historyKeymap]),
        tandemSync(doc),
      ],
    }),
  });

  nameInput.addEventListener('input', () => {
    myName = nameInput.value.trim().slice(0, 40) || `guest-${agent.slice(-4)}`;
    localStorage.setItem(NAME_KEY, myName);
    doc.setPresence({ name: myName, color: colorFor(myName) });
    showPeople();
  });

  showStatus(doc.status);
  showPeople();
  showUnsent();
  view.focus();
  window.tandem = { view, client: doc, doc, replica: doc.replica, agent, text: () => doc.text() };
}

// ---- start -------------------------------------------------------------------------------------

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('tandem: no offline start', e));
}
const root = document.getElementById('app');
const m = location.pathname.match(/^\/d\/([^/]+)$/);
if (m && DOC_ID.test(decodeURIComponent(m[1]))) {
  editor(root, decodeURIComponent(m[1])).catch((e) => {
    console.error(e);
    root.append(el('p', { class: 'error' }, `The editor failed to start: ${e.message}`));
  });
} else if (m) {
  root.append(el('p', { class: 'error', testid: 'bad-doc' }, 'Not a document name: 1 to 128 letters, digits, dots, dashes or underscores.'));
} else {
  picker(root);
}
