// The Tandem web editor: `/` picks a document, `/d/<doc-id>` edits it (docs/protocol.md).
// The sync client, engine loading, offline store and presence come from the @tandem/client
// package (clients/js); this file is the pages around them.
import { Compartment, EditorState } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, drawSelection, highlightActiveLine } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import createEngine from 'tandem-engine';
import { openDocument, DOC_ID, tokenSubject } from '@tandem/client';
import { tandemSync } from '@tandem/client/codemirror';
import { docFromContent, replaceWithDoc } from '@tandem/client/prosemirror';
import { richEditor } from './rich.js';
import { historyPanel } from './history.js';
import { el } from './dom.js';

const RECENT_KEY = 'tandem-recent';
const DOC_RULE = 'A document name is 1 to 128 letters, digits, dots, dashes or underscores.';

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

// The access token a server with auth wants: given once as ?token=... (on / or /d/<doc>), kept
// for this tab (sessionStorage) and taken out of the address bar, where it would be shared with
// the link.
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

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

// ---- `/`: the document picker ------------------------------------------------------------------

function picker(root) {
  document.title = 'Tandem';
  const token = pageToken();
  const input = el('input', { testid: 'doc-name', placeholder: 'document name', 'aria-label': 'document name', autofocus: '' });
  const error = el('p', { class: 'error', testid: 'picker-error', role: 'alert' });
  const open = (name, kind) => {
    if (!DOC_ID.test(name)) {
      error.textContent = DOC_RULE;
      return;
    }
    location.href = `/d/${encodeURIComponent(name)}${kind === 'rich' ? '?kind=rich' : ''}`;
  };
  const form = el('form', {}, input, el('button', { type: 'submit' }, 'Open'),
                  el('button', { type: 'button', testid: 'new-doc', title: 'Headings, lists, bold, links: edited in ProseMirror' }, 'New document'),
                  el('button', { type: 'button', testid: 'new-plain-doc', title: 'Code or Markdown source: edited in CodeMirror' }, 'New plain text'));
  form.addEventListener('submit', (e) => { e.preventDefault(); open(input.value.trim()); });
  form.querySelector('[data-testid=new-doc]').addEventListener('click', () => open(`doc-${randomHex(8)}`, 'rich'));
  form.querySelector('[data-testid=new-plain-doc]').addEventListener('click', () => open(`doc-${randomHex(8)}`, 'plain'));
  const kinds = el('p', { class: 'note', testid: 'doc-kinds' },
                   'A new document is rich text (headings, lists, bold, links); plain text is for code or Markdown sources. ',
                   'A document opened by name keeps its kind; a new name opens as plain text.');

  const local = recent();
  const recentList = el('ul', { testid: 'recent' });
  for (const r of local) {
    recentList.append(el('li', {}, el('a', { href: `/d/${r.id}` }, r.id), ' ', el('time', {}, when(r.at))));
  }
  const serverList = el('ul', { testid: 'server-docs' });
  const serverNote = el('p', { class: 'note', testid: 'server-docs-note' }, 'Loading the server\'s documents…');
  root.append(el('div', { class: 'picker' }, el('h1', {}, 'Tandem'), form, error, kinds,
                 el('h2', {}, 'On this server'), serverNote, serverList,
                 el('h2', {}, 'Recent in this browser'), local.length ? recentList : el('p', { class: 'note' }, 'None yet.')));

  // The server's own list (the HTTP API, with the tab's token when there is one): what an open
  // server holds, or what the token may read.
  fetch('/api/docs', { headers: token ? { Authorization: `Bearer ${token}` } : {} })
    .then(async (res) => {
      const body = await res.json().catch(() => ({}));
      if (!res.ok) {
        serverNote.textContent = res.status === 401 ? 'Sign in (open a link with your token) to see this server\'s documents.'
          : `The server did not list its documents: ${body?.error?.message || res.status}`;
        return;
      }
      const docs = (body.documents || []).filter((d) => DOC_ID.test(d.doc ?? '')).sort((a, b) => (b.updated_ms || 0) - (a.updated_ms || 0));
      serverNote.textContent = docs.length ? '' : 'No documents yet.';
      serverNote.hidden = docs.length > 0;
      for (const d of docs.slice(0, 100)) {
        serverList.append(el('li', {}, el('a', { href: `/d/${d.doc}` }, d.doc), ' ', el('time', {}, when(d.updated_ms))));
      }
    })
    .catch(() => { serverNote.textContent = 'The server cannot be reached: only this browser\'s recent documents are listed.'; });
}

// ---- `/d/<doc-id>`: the editor -----------------------------------------------------------------

// What the header says about access, by the document handle's `access` (clients/js): empty
// when the person can write.
function accessText(access, message, hasToken) {
  switch (access) {
    case 'read': return 'read-only';
    case 'unauthorized':
      if (!hasToken) return 'sign in to open this document';
      if (/expired/.test(message)) return 'your access expired — reload or sign in';
      return `your access was refused (${message}) — sign in again`;
    case 'forbidden': return 'not allowed to open this document';
    case 'deleted': return 'this document was deleted';
    case 'stopped': return `the server stopped this editor (${message}) — reload`;
    default: return '';
  }
}

// Resolves once the handle holds what the server held when it welcomed it (or it is offline, was
// refused, or `ms` passed): then the document's kind is known.
function settled(doc, ms = 3000) {
  return new Promise((resolve) => {
    let timer = null;
    let offs = [];
    const done = () => {
      clearInterval(timer);
      for (const off of offs) off();
      resolve();
    };
    const check = () => {
      if (doc.replica.synced() || doc.status === 'offline' || !['unknown', 'write', 'read'].includes(doc.access)) done();
    };
    offs = ['change', 'status', 'access', 'unsent'].map((e) => doc.on(e, check));
    const until = Date.now() + ms;
    timer = setInterval(() => (Date.now() > until ? done() : check()), 50);
    check();
  });
}

async function editor(root, docId) {
  document.title = `${docId} · Tandem`;
  remember(docId);
  const token = pageToken();
  const subject = token ? tokenSubject(token) : '';
  const nameKey = `tandem-name${subject ? `:${subject}` : ''}`;
  const status = el('span', { testid: 'status', class: 'status offline' }, 'connecting');
  const access = el('span', { testid: 'access', class: 'access', role: 'status', hidden: '' });
  const unsent = el('span', { testid: 'unsent', class: 'unsent' });
  const copy = el('button', { type: 'button', class: 'copy-link', testid: 'copy-link', title: 'Copy a link to this document' }, 'Copy link');
  const nameInput = el('input', { testid: 'name', placeholder: 'your name', maxlength: '40', 'aria-label': 'your name' });
  const people = el('ul', { testid: 'people' });
  const count = el('span', { class: 'count', testid: 'people-count' }, '1');
  // On a narrow screen the list of who is here folds away behind this button.
  const toggle = el('button', { type: 'button', class: 'people-toggle', testid: 'people-toggle',
                                'aria-expanded': 'false', title: 'Who is here' }, 'Here ', count);
  // `?kind=rich` (a new document from the picker): rich text even before anything is formatted.
  const params = new URLSearchParams(location.search);
  const wantRich = params.get('kind') === 'rich';
  if (params.has('kind')) {
    params.delete('kind');
    const rest = params.toString();
    window.history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
  }
  const host = el('div', { class: 'editor' });
  const aside = el('aside', { testid: 'people-panel' }, el('h2', {}, 'Here'), people);
  const column = el('div', { class: 'column' }, host);
  const main = el('main', {}, column, aside);
  root.append(
    el('header', {}, el('a', { href: '/', class: 'home' }, 'Tandem'), el('span', { class: 'doc', testid: 'doc-id' }, docId),
       status, access, unsent, copy, el('label', {}, el('span', { class: 'name-label' }, 'Name '), nameInput), toggle),
    main);
  toggle.addEventListener('click', () => {
    const open = main.classList.toggle('people-open');
    toggle.setAttribute('aria-expanded', String(open));
  });
  copy.addEventListener('click', async () => {
    const link = `${location.origin}/d/${encodeURIComponent(docId)}`;  // never the token: it is this person's
    try {
      await navigator.clipboard.writeText(link);
      copy.textContent = 'Link copied';
    } catch {
      window.prompt('Copy this link:', link);
    }
    setTimeout(() => { copy.textContent = 'Copy link'; }, 2000);
  });

  const doc = await openDocument({ engine: createEngine, docId, token });
  const agent = doc.agent;
  const defaultName = () => subject || `guest-${agent.slice(-4)}`;
  let myName = localStorage.getItem(nameKey) || defaultName();
  nameInput.value = myName;

  const showStatus = (s, detail) => {
    status.textContent = s;
    status.className = `status ${s}`;
    status.title = detail || '';
  };
  const showPeople = () => {
    const peers = doc.peers();
    people.replaceChildren(el('li', { class: 'me' }, el('span', { class: 'dot', style: `background:${doc.color()}` }), `${myName} (you)`));
    for (const p of peers) {
      people.append(el('li', {}, el('span', { class: 'dot', style: `background:${p.color}` }), p.name));
    }
    count.textContent = String(peers.length + 1);
  };
  const showUnsent = () => {
    const n = doc.unsent();
    const chars = `${n} character${n === 1 ? '' : 's'}`;
    unsent.textContent = !n ? 'all saved' : doc.access === 'write' || doc.access === 'unknown' ? `${chars} not yet saved`
      : `${chars} not saved`;
    unsent.dataset.count = String(n);
  };

  // A document is rich text once anything in it was formatted (the first block typed as a
  // paragraph is enough: that is how a new rich document says what it is).
  doc.on('status', showStatus);
  showStatus(doc.status);
  await settled(doc);
  let rich = doc.rich;
  if (!rich && wantRich && doc.writable) {
    doc.setBlock(0, 'paragraph');
    rich = true;
  }
  root.classList.toggle('rich', rich);

  // Locked (nothing can be typed) whenever the server would not take what is typed.
  const lock = new Compartment();
  const locked = (on) => (on ? [EditorState.readOnly.of(true), EditorView.editable.of(false)] : []);
  let view = null;
  let richView = null;
  const showAccess = () => {
    const text = accessText(doc.access, doc.accessMessage, !!token);
    access.textContent = text;
    access.hidden = !text;
    access.className = `access ${doc.access}`;
    access.title = doc.accessMessage || '';
    const readOnly = !(doc.access === 'write' || doc.access === 'unknown');
    root.classList.toggle('locked', readOnly);
    if (richView) richView.setLocked(readOnly);
    else view?.dispatch({ effects: lock.reconfigure(locked(readOnly)) });
    showUnsent();
  };

  doc.on('presence', showPeople);
  doc.on('unsent', showUnsent);
  doc.on('access', showAccess);
  doc.setPresence({ name: myName });

  if (rich) {
    const bar = el('div', { class: 'toolbar', testid: 'toolbar', role: 'toolbar' });
    host.before(bar);
    host.classList.add('rich-host');
    richView = richEditor({ host, bar, doc, docId });
    view = richView.view;
  } else {
    // A plain document someone else has just formatted: this editor shows its text only.
    const notice = el('p', { class: 'notice', testid: 'now-rich', hidden: '' },
                      'Someone formatted this document: ', el('a', { href: location.pathname }, 'reload'), ' to edit it as rich text.');
    host.before(notice);
    doc.on('change', (_patches, formats) => { if (formats && doc.rich) notice.hidden = false; });
    view = new EditorView({
      parent: host,
      state: EditorState.create({
        doc: doc.text(),
        extensions: [
          lineNumbers(), drawSelection(), highlightActiveLine(), history(), EditorView.lineWrapping,
          keymap.of([...defaultKeymap, ...historyKeymap]),
          lock.of(locked(false)),
          tandemSync(doc),
        ],
      }),
    });
  }

  // The history panel. A restore is one step of the editor's undo history: the fewest changes
  // to the text (CodeMirror), or one replacement of what differs, formatting included (ProseMirror).
  const past = historyPanel({
    doc, column,
    restoreTo: richView
      ? async (at) => replaceWithDoc(view, docFromContent(await doc.history.contentAt(at)))
      : (at) => doc.history.restore(String(at), (edits) => view.dispatch({ changes: edits, userEvent: 'input.restore', scrollIntoView: true })),
  });
  toggle.before(past.toggle);
  main.append(past.panel);

  nameInput.addEventListener('input', () => {
    myName = nameInput.value.trim().slice(0, 40) || defaultName();
    localStorage.setItem(nameKey, myName);
    doc.setPresence({ name: myName });
    showPeople();
  });

  showStatus(doc.status);
  showPeople();
  showAccess();
  view.focus();
  window.tandem = { view, client: doc, doc, replica: doc.replica, agent, kind: rich ? 'rich' : 'plain', text: () => doc.text(),
                    markdown: () => doc.markdown(), rich: richView };
}

// ---- start -------------------------------------------------------------------------------------

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('tandem: no offline start', e));
}
const root = document.getElementById('app');
const m = location.pathname.match(/^\/d\/([^/]+)$/);
let id = null;
try {
  id = m ? decodeURIComponent(m[1]) : null;
} catch {
  id = '';  // not even percent-encoding
}
const backHome = () => el('p', {}, el('a', { href: '/', testid: 'back-home' }, '← All documents'));
if (m && DOC_ID.test(id)) {
  editor(root, id).catch((e) => {
    console.error(e);
    root.append(el('div', { class: 'picker' }, el('p', { class: 'error', testid: 'editor-error' }, `The editor failed to start: ${e.message}`),
                   backHome()));
  });
} else if (m || location.pathname !== '/') {
  document.title = 'Not a document · Tandem';
  root.append(el('div', { class: 'picker' }, el('h1', {}, 'Tandem'),
                 el('p', { class: 'error', testid: 'bad-doc' }, m ? `"${id}" is not a document name. ${DOC_RULE}`
                   : 'There is no page here.'),
                 backHome()));
} else {
  picker(root);
}
