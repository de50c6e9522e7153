// One document on a Tandem server, as an application sees it: the text, edits in UTF-16 offsets
// (what JavaScript strings and editors count), events for remote changes, connection status,
// other people's cursors and the count of own edits not yet durable at the server; the replica
// kept in IndexedDB so that unsent edits survive a reload or a start without network.
import { SyncClient } from './sync.js';
import { ReplicaStore } from './store.js';
import { chooseAgent, randomHex, tokenSubject } from './agent.js';
import { colorFor } from './color.js';

export const DOC_ID = /^[A-Za-z0-9._-]{1,128}$/;
const SAVE_DELAY_MS = 100;
const EVENTS = new Set(['change', 'status', 'presence', 'unsent']);
const noStore = { list: async () => [], put: async () => {} };

// ws(s)://HOST/ws/<doc>?token=... from the server's address (http, https, ws or wss; default:
// the page's own origin).
export function socketUrl(server, docId, token) {
  const base = server ?? globalThis.location?.origin;
  if (!base) throw new Error('tandem: openDocument needs `url`, the server (e.g. "ws://127.0.0.1:8080")');
  const u = new URL(base, globalThis.location?.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/ws/${docId}`;
  u.search = token ? `?token=${encodeURIComponent(token)}` : '';
  u.hash = '';
  return u.toString();
}

export class TandemDocument {
  // Made by openDocument(); not meant to be constructed by applications.
  constructor({ docId, replica, acked, store, url, webSocket, followOnline }) {
    this.docId = docId;
    this.agent = replica.agent();
    this.replica = replica;
    this.store = store;
    this.listeners = new Map();
    this.me = { name: '', color: '', anchor: null, head: null };
    this.saveTimer = null;
    this.flushQueued = false;
    this.closed = false;
    this.client = new SyncClient({
      url, replica, acked, webSocket,
      onRemote: (patches) => {
        this.emit('change', patches);
        this.persist();
      },
      onStatus: (s, detail) => this.emit('status', s, detail),
      onPresence: () => this.emit('presence', this.peers()),
      onProgress: () => {
        this.emit('unsent', this.unsent());
        this.persist();
      },
    });
    this.windowEvents = [];
    const w = globalThis.window;
    if (followOnline && w?.addEventListener) {
      this.windowEvents = [['offline', () => this.stop()], ['online', () => this.start()],
                           ['pagehide', () => this.save()]];
      for (const [e, f] of this.windowEvents) w.addEventListener(e, f);
    }
  }

  // ---- the text -------------------------------------------------------------------------------

  text() { return this.replica.text(); }
  // Length in UTF-16 code units.
  get length() { return this.replica.length16(); }

  // Inserts `text` at UTF-16 offset `pos`. Throws on a position outside the text.
  insert(pos, text) {
    if (!text) return;
    const err = this.replica.insert16(pos, String(text));
    if (err) throw new Error(`tandem: insert at ${pos}: ${err}`);
    this.changed();
  }

  // Deletes `len` UTF-16 code units from `pos` (a surrogate pair goes whole or not at all).
  delete(pos, len) {
    if (!(len > 0)) return;
    const err = this.replica.remove16(pos, len);
    if (err) throw new Error(`tandem: delete ${len} at ${pos}: ${err}`);
    this.changed();
  }

  // Local edits are sent together once the current task is done.
  changed() {
    this.persist();
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.client.flush();
      this.emit('unsent', this.unsent());
    });
  }

  // ---- events -----------------------------------------------------------------------------------

  // 'change' (patches): remote edits, [[from, deleted, inserted], ...] in UTF-16, each applying to
  //   the text the previous one left (local edits made through insert/delete are not reported);
  // 'status' (status, detail): 'connecting', 'connected' or 'offline' (detail: why it stopped);
  // 'presence' (peers): everyone else here, as peers() returns;
  // 'unsent' (count): own edits not yet durable at the server.
  // Returns a function that unsubscribes.
  on(event, fn) {
    if (!EVENTS.has(event)) throw new Error(`tandem: no event '${event}'`);
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }
  off(event, fn) { this.listeners.get(event)?.delete(fn); }
  emit(event, ...args) {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        fn(...args);
      } catch (e) {
        console.error(`tandem: a '${event}' listener failed`, e);
      }
    }
  }

  // ---- status, sync -----------------------------------------------------------------------------

  get status() { return this.client.status; }
  get readOnly() { return this.client.readOnly; }
  unsent() { return this.client.unsent(); }

  // Connects (again), e.g. when the network is back; done by openDocument unless `connect: false`.
  start() {
    if (this.closed) return;
    if (globalThis.navigator?.onLine === false) {
      this.client.setStatus('offline', '');
      return;
    }
    this.client.reconnectNow();
  }
  // Goes offline and stays so until start(); edits go on and wait.
  stop() { this.client.stop(); }

  // ---- presence ---------------------------------------------------------------------------------

  // Own name, colour and cursor (anchor, head: UTF-16 offsets, or null for none); fields left out
  // keep their value. The colour defaults to one derived from the name.
  setPresence({ name, color, anchor, head } = {}) {
    if (name !== undefined) this.me.name = String(name);
    if (color !== undefined) this.me.color = String(color || '');
    if (anchor !== undefined) this.me.anchor = anchor;
    if (head !== undefined) this.me.head = head;
    const conv = (p) => (p === null || p === undefined ? null : this.replica.from16(p));
    const name_ = this.me.name || this.agent;
    this.client.setPresence(name_, this.me.color || colorFor(name_), conv(this.me.anchor), conv(this.me.head ?? this.me.anchor));
  }

  // Everyone else on the document: [{session, agent, name, color, anchor, head}], positions in
  // UTF-16 offsets of the current text (null: no cursor).
  peers() {
    const out = [];
    for (const [session, p] of this.client.peers) {
      const head = p.head === null || p.head === undefined ? null : this.replica.to16(p.head);
      const anchor = p.anchor === null || p.anchor === undefined ? head : this.replica.to16(p.anchor);
      out.push({ session, agent: p.agent, name: p.name || p.agent, color: p.color || colorFor(p.agent), anchor, head });
    }
    return out;
  }

  // ---- storage, end -----------------------------------------------------------------------------

  persist() {
    if (this.closed) return;
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.save();
    }, SAVE_DELAY_MS);
  }

  // Saves the replica now (also done 100 ms after each change and when the page is hidden).
  save() {
    if (this.closed) return Promise.resolve();
    return this.store.put(this.docId, this.agent, this.replica.save(), this.client.acked, this.client.unsent())
      .catch((e) => console.warn('tandem: saving failed', e));
  }

  // Saves, disconnects and frees the replica; the handle is unusable afterwards.
  async close() {
    if (this.closed) return;
    clearTimeout(this.saveTimer);
    this.client.stop();
    await this.save();
    this.closed = true;
    for (const [e, f] of this.windowEvents) globalThis.window.removeEventListener(e, f);
    this.listeners.clear();
    this.replica.delete?.();
  }
}

// Opens a document. Options:
//   engine   the Tandem engine: the module made by createEngine() from tandem-engine.mjs (built
//            by web-editor/build.sh), or createEngine itself, or a promise of the module;
//   docId    the document, [A-Za-z0-9._-]{1,128};
//   url      the server, "ws://HOST:PORT" or "http(s)://..." (default: the page's origin);
//   token    an access token (a JWT or `tandem token`'s); the agent is then "<subject>/...";
//   storage  where the replica is kept: by default IndexedDB (a ReplicaStore), null for nowhere;
//   agent    the agent name (default: chosen per tab, continuing one that left edits unsent);
//   connect  false to start offline (call start() later); followOnline false to ignore the
//            browser's online/offline events; webSocket: the WebSocket class to use.
export async function openDocument({ engine, docId, url, token = '', storage, agent, connect = true,
                                     followOnline = true, webSocket } = {}) {
  if (!DOC_ID.test(docId ?? '')) throw new Error(`tandem: not a document id: ${docId}`);
  if (!engine) throw new Error('tandem: openDocument needs `engine` (createEngine from tandem-engine.mjs, or its module)');
  const loadEngine = async () => {
    const m = await (typeof engine === 'function' ? engine() : engine);
    if (!m?.Replica) throw new Error('tandem: `engine` is not the Tandem engine module');
    return m;
  };
  const [M, store] = await Promise.all([loadEngine(), storage === undefined ? ReplicaStore.open() : storage ?? noStore]);
  const records = await store.list(docId);
  const subject = token ? tokenSubject(token) : '';
  let name = agent || await chooseAgent(docId, records, subject);
  if (!M.Replica.validAgent(name)) throw new Error(`tandem: not a valid agent name: ${name}`);
  const saved = records.find((r) => r.agent === name);
  let replica = saved ? M.Replica.load(saved.snapshot, name) : null;
  let acked = replica ? saved.acked : 0;
  if (saved && !replica) {
    // A stored replica that does not load: never reuse its agent (its ids are taken).
    console.error(`tandem: the stored replica of ${docId} does not load; starting afresh`);
    name = `${subject ? `${subject}/` : 'web-'}${randomHex(12)}`;
    acked = 0;
  }
  if (!replica) replica = new M.Replica(name);
  const doc = new TandemDocument({ docId, replica, acked, store, url: socketUrl(url, docId, token), webSocket, followOnline });
  if (connect) doc.start();
  return doc;
}
