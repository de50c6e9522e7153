// The Tandem web editor: `/` picks a document, `/d/<doc-id>` edits it (docs/protocol.md).
import { ChangeSet, EditorState, Annotation, Transaction } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, drawSelection, highlightActiveLine } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import createEngine from 'tandem-engine';
import { SyncClient } from './sync.js';
import { ReplicaStore } from './store.js';
import { remoteCursors, setRemoteCursors, colorFor } from './presence.js';

const DOC_ID = /^[A-Za-z0-9._-]{1,128}$/;
const RECENT_KEY = 'tandem-recent';
const NAME_KEY = 'tandem-name';
const remote = Annotation.define();

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

// Holds a Web Lock named after the agent for the life of the page: an agent must be used by one
// replica at a time, and a duplicated tab copies sessionStorage.
function lockAgent(agent) {
  if (!navigator.locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks.request(`tandem-agent:${agent}`, { ifAvailable: true }, (lock) => {
      resolve(!!lock);
      return lock ? new Promise(() => {}) : undefined;
    });
  });
}

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

// Who a token is for: a JWT's `sub`, or the subject of Tandem's own "v1|subject|..." tokens. Read
// only to name this tab's agent "<subject>/..." as the server requires; the server checks the rest.
function tokenSubject(token) {
  const parts = token.split('.');
  const decode = (p) => atob(p.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (p.length % 4)) % 4));
  try {
    if (parts.length === 3) return String(JSON.parse(decode(parts[1])).sub || '');
    if (parts.length === 2) {
      const f = decode(parts[0]).split('|');
      return f[0] === 'v1' ? f[1] : '';
    }
  } catch (e) {
    console.warn('tandem: cannot read the token', e);
  }
  return '';
}

async function chooseAgent(docId, records, subject) {
  const key = `tandem-agent:${docId}`;
  const prefix = subject ? `${subject}/` : 'web-';
  const usable = (a) => !subject || a.startsWith(prefix);  // with auth, only the token's own agents
  const mine = sessionStorage.getItem(key);
  let agent = null;
  if (mine && usable(mine) && (await lockAgent(mine))) agent = mine;
  // Edits left unsent by a page that is gone: continue as its agent, so that they are sent.
  for (const r of records) {
    if (agent) break;
    if (r.unsent > 0 && usable(r.agent) && (await lockAgent(r.agent))) agent = r.agent;
  }
  while (!agent) {
    const a = `${prefix}${randomHex(12)}`;
    if (await lockAgent(a)) agent = a;
  }
  sessionStorage.setItem(key, agent);
  return agent;
}

async function editor(root, docId) {
  document.title = `${docId} · Tandem`;
  remember(docId);
  const status = el('span', { testid: 'status', class: 'status offline' }, 'connecting');
  const unsent = el('span', { testid: 'unsent', class: 'unsent' });
  const nameInput = el('input', { testid: 'name', placeholder: 'your name', maxlength: '40' });
  const people = el('ul', { testid: 'people' });
  const host = el('div', { class: 'editor' });
  root.append(
    el('header', {}, el('a', { href: '/', class: 'home' }, 'Tandem'), el('span', { class: 'doc', testid: 'doc-id' }, docId),
       status, unsent, el('label', {}, 'Name ', nameInput)),
    el('main', {}, host, el('aside', {}, el('h2', {}, 'Here'), people)));

  const [engine, store] = await Promise.all([createEngine(), ReplicaStore.open()]);
  const records = await store.list(docId);
  const token = pageToken();
  const agent = await chooseAgent(docId, records, token ? tokenSubject(token) : '');
  const saved = records.find((r) => r.agent === agent);
  let replica = saved ? engine.Replica.load(saved.snapshot, agent) : null;
  const acked = replica ? saved.acked : 0;
  if (!replica) replica = new engine.Replica(agent);

  let myName = localStorage.getItem(NAME_KEY) || `guest-${agent.slice(-4)}`;
  nameInput.value = myName;
  const myColor = () => colorFor(myName);

  let view = null;
  const showPeople = (peers) => {
    people.replaceChildren(el('li', { class: 'me' }, el('span', { class: 'dot', style: `background:${myColor()}` }), `${myName} (you)`));
    for (const [, p] of peers) {
      people.append(el('li', {}, el('span', { class: 'dot', style: `background:${p.color}` }), p.name || p.agent));
    }
  };
  const showCursors = (peers) => {
    const cursors = [];
    for (const [id, p] of peers) {
      if (p.head === null || p.head === undefined) continue;
      const head = replica.to16(p.head);
      const anchor = p.anchor === null || p.anchor === undefined ? head : replica.to16(p.anchor);
      cursors.push({ id, name: p.name || p.agent, color: p.color || colorFor(p.agent), anchor, head });
    }
    view.dispatch({ effects: setRemoteCursors.of(cursors) });
  };

  const saveNow = () => store.put(docId, agent, replica.save(), client.acked, client.unsent())
    .catch((e) => console.warn('tandem: saving failed', e));
  let saveTimer = null;
  const persist = () => {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => {
      saveTimer = null;
      saveNow();
    }, 100);
  };
  const showUnsent = () => {
    const n = client.unsent();
    unsent.textContent = n ? `${n} unsent` : 'all saved';
    unsent.dataset.count = String(n);
  };

  const client = new SyncClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/${docId}` +
      (token ? `?token=${encodeURIComponent(token)}` : ''),
    replica,
    acked,
    onRemote(patches) {
      let changes = ChangeSet.empty(view.state.doc.length);
      for (const [from, len, text] of patches) {
        changes = changes.compose(ChangeSet.of({ from, to: from + len, insert: text }, changes.newLength, '\n'));
      }
      view.dispatch({ changes, annotations: [remote.of(true), Transaction.addToHistory.of(false)] });
      if (view.state.doc.length !== replica.length16()) {
        // Never expected; if it happens, the engine's text wins.
        console.error('tandem: editor and replica disagree; reloading the text');
        view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: replica.text() },
                        annotations: [remote.of(true), Transaction.addToHistory.of(false)] });
      }
      persist();
    },
    onStatus(s, detail) {
      status.textContent = s;
      status.className = `status ${s}`;
      status.title = detail || '';
    },
    onPresence(peers) {
      showPeople(peers);
      showCursors(peers);
    },
    onProgress() {
      showUnsent();
      persist();
    },
  });

  const sendPresence = (state) => {
    const sel = state.selection.main;
    client.setPresence(myName, myColor(), replica.from16(sel.anchor), replica.from16(sel.head));
  };
  view = new EditorView({
    parent: host,
    state: EditorState.create({
      doc: replica.text(),
      extensions: [
        EditorState.lineSeparator.of('\n'),  // "\r" is a character like any other, as in the engine
        lineNumbers(), drawSelection(), highlightActiveLine(), history(), EditorView.lineWrapping,
        keymap.of([...defaultKeymap, ...historyKeymap]),
        remoteCursors,
        EditorView.updateListener.of((u) => {
          let local = false;
          for (const tr of u.transactions) {
            if (!tr.docChanged || tr.annotation(remote)) continue;
            local = true;
            tr.changes.iterChanges((fromA, toA, fromB, _toB, inserted) => {
              if (toA > fromA) {
                const err = replica.remove16(fromB, toA - fromA);
                if (err) console.error('tandem: remove', err);
              }
              if (inserted.length) {
                const err = replica.insert16(fromB, inserted.toString());
                if (err) console.error('tandem: insert', err);
              }
            });
          }
          if (local) {
            client.flush();
            showUnsent();
            persist();
          }
          if (u.selectionSet || u.docChanged) sendPresence(u.state);
        }),
      ],
    }),
  });

  nameInput.addEventListener('input', () => {
    myName = nameInput.value.trim().slice(0, 40) || `guest-${agent.slice(-4)}`;
    localStorage.setItem(NAME_KEY, myName);
    showPeople(client.peers);
    sendPresence(view.state);
  });
  window.addEventListener('offline', () => client.stop());
  window.addEventListener('online', () => client.reconnectNow());
  window.addEventListener('pagehide', saveNow);

  showPeople(client.peers);
  showUnsent();
  sendPresence(view.state);
  if (navigator.onLine === false) client.onStatus('offline');
  else client.start();
  view.focus();
  window.tandem = { view, client, replica, agent, engine, text: () => replica.text() };
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
