// One document on a Tandem server, as an application sees it: the text, edits in UTF-16 offsets
// (what JavaScript strings and editors count), events for remote changes, connection status,
// other people's cursors and the count of own edits not yet durable at the server; the replica
// kept in IndexedDB so that unsent edits survive a reload or a start without network.
import { SyncClient } from './sync.js';
import { ReplicaStore } from './store.js';
import { chooseAgent, tokenMode, tokenSubject } from './agent.js';
import { colorFor, distinctColor, isColor } from './color.js';
import { DocumentHistory } from './history.js';

export const DOC_ID = /^[A-Za-z0-9._-]{1,128}$/;
const SAVE_DELAY_MS = 100;
const EVENTS = new Set(['change', 'status', 'presence', 'unsent', 'access']);
// What the server lets this handle do (see `access` below), by the error that stopped it.
const ACCESS_OF_ERROR = new Map([[4401, 'unauthorized'], [4403, 'forbidden'], [4410, 'deleted']]);
const CANNOT_WRITE = new Set(['read', 'forbidden', 'deleted']);
const noStore = { list: async () => [], put: async () => {}, remove: async () => {} };

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
  constructor({ docId, replica, store, server, token, webSocket, followOnline }) {
    this.docId = docId;
    this.agent = replica.agent();
    this.replica = replica;
    this.store = store;
    this.server = server;
    this.token = token;
    // Its past, over the server's HTTP API (history.js).
    this.history = new DocumentHistory(this, () => this.token);
    this.listeners = new Map();
    this.me = { name: '', color: '', anchor: null, head: null };
    this.myColor = '';
    // 'unknown' until the server says; 'write' or 'read' (a read-only token) once it welcomed this
    // handle; 'unauthorized' (no token, or it expired: a new one lets it in, setToken),
    // 'forbidden' (the token does not grant this document), 'deleted', or 'stopped' (another
    // refusal that retrying cannot fix): then accessMessage says the server's words.
    this.access = tokenMode(token) === 'read' ? 'read' : 'unknown';
    this.accessMessage = '';
    this.saveTimer = null;
    this.flushQueued = false;
    this.closed = false;
    this.client = new SyncClient({
      url: socketUrl(server, docId, token), replica, webSocket,
      onRemote: (patches, formats) => {
        this.emit('change', patches, formats);
        this.persist();
      },
      onStatus: (s, detail) => this.emit('status', s, detail),
      onPresence: () => {
        this.pickColor();
        this.emit('presence', this.peers());
      },
      onWelcome: (readOnly) => this.setAccess(readOnly ? 'read' : 'write', ''),
      onStopped: (code, message) => this.setAccess(ACCESS_OF_ERROR.get(code) ?? 'stopped', message),
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

  // Whether local edits can reach the server: not when it said read-only, refused the document,
  // or deleted it (edits while 'unauthorized' wait for setToken).
  get writable() { return !CANNOT_WRITE.has(this.access); }

  mustWrite(what) {
    if (!this.writable) {
      throw new Error(`tandem: cannot ${what}: ${this.access === 'read' ? 'this document is read-only with this token'
        : this.accessMessage || this.access}`);
    }
  }

  // Inserts `text` at UTF-16 offset `pos`. Throws on a position outside the text, and when the
  // document is not writable.
  insert(pos, text) {
    if (!text) return;
    this.mustWrite('insert');
    const err = this.replica.insert16(pos, String(text));
    if (err) throw new Error(`tandem: insert at ${pos}: ${err}`);
    this.changed();
  }

  // Deletes `len` UTF-16 code units from `pos` (a surrogate pair goes whole or not at all).
  delete(pos, len) {
    if (!(len > 0)) return;
    this.mustWrite('delete');
    const err = this.replica.remove16(pos, len);
    if (err) throw new Error(`tandem: delete ${len} at ${pos}: ${err}`);
    this.changed();
  }

  // ---- rich text (crdt/format.h: names, values, and how concurrent formatting merges) -----------

  // Gives UTF-16 range [from, to) mark `name`: 'bold', 'italic', 'underline', 'strike', 'code'
  // (value true), 'link' (value: the href), 'comment' (value: its id). Throws on a refused name,
  // value or range.
  format(from, to, name, value = true) {
    this.mustWrite('format');
    const err = this.replica.mark16(from, to - from, String(name), value === true ? 'true' : String(value));
    if (err) throw new Error(`tandem: ${name} on [${from}, ${to}): ${err}`);
    this.changed();
  }

  // Takes mark `name` off [from, to) (a comment: the one with id `value`).
  unformat(from, to, name, value = '') {
    this.mustWrite('unformat');
    const err = this.replica.unmark16(from, to - from, String(name), String(value));
    if (err) throw new Error(`tandem: removing ${name} from [${from}, ${to}): ${err}`);
    this.changed();
  }

  // The block holding UTF-16 offset `at` becomes `type`: 'paragraph', 'heading' ({level: 1-6}),
  // 'bullet' or 'ordered' ({depth: 0-7}), 'quote', 'code' ({language}).
  setBlock(at, type, attrs = {}) {
    this.mustWrite('setBlock');
    const value = attrs.level ?? attrs.depth ?? attrs.language ?? '';
    const err = this.replica.setBlock16(at, String(type), String(value));
    if (err) throw new Error(`tandem: block ${type} at ${at}: ${err}`);
    this.changed();
  }

  // The stretches that carry marks, [{from, to, marks: {bold: true, link: href, comment: [ids]}}],
  // and every block, [{at, type, attrs}], in UTF-16 units. A remote change of formatting is a
  // 'change' event whose second argument is true.
  spans() {
    return this.replica.spans16().map(([from, to, list]) => {
      const marks = {};
      for (const [name, value] of list) {
        if (name === 'comment') (marks.comment ??= []).push(value);
        else marks[name] = name === 'link' ? value : true;
      }
      return { from, to, marks };
    });
  }

  blocks() {
    return this.replica.blocks16().map(([at, type, value]) => {
      const attrs = type === 'heading' ? { level: Number(value) }
        : type === 'bullet' || type === 'ordered' ? { depth: Number(value) }
          : type === 'code' ? { language: value } : {};
      return { at, type, attrs };
    });
  }

  // Whether the document has ever been formatted (a mark or a block type): a rich document, which
  // protocol 1 clients and plain-text editors cannot show whole.
  get rich() { return this.replica.formatEvents() > 0; }

  // The document as CommonMark Markdown or as HTML, as the server's HTTP API renders it
  // (`?format=markdown|html`): typed text escaped, comments left out of Markdown.
  markdown() { return this.replica.markdown(); }
  html() { return this.replica.html(); }

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

  // 'change' (patches, formats): remote edits, [[from, deleted, inserted], ...] in UTF-16, each
  //   applying to the text the previous one left (local edits made through insert/delete are not
  //   reported); `formats` is false, or, when marks or block types arrived too, where they act:
  //   [[from, to], ...] in UTF-16 of the new text (a block's start as an empty range): marks and
  //   blocks can have changed only there (read spans() and blocks());
  // 'status' (status, detail): 'connecting', 'connected' or 'offline' (detail: why it stopped);
  // 'presence' (peers): everyone else here, as peers() returns;
  // 'unsent' (count): own edits not yet durable at the server;
  // 'access' (access, message): what the server lets this handle do changed (see `access`).
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
  get readOnly() { return this.access === 'read'; }
  unsent() { return this.client.unsent(); }

  setAccess(access, message) {
    if (access === this.access && message === this.accessMessage) return;
    this.access = access;
    this.accessMessage = message;
    this.emit('access', access, message);
  }

  // A fresh access token (a short-lived JWT renewed by the app): an open connection moves to it at
  // once, and one refused for its token (unauthorized, forbidden) tries again with it. Throws for a
  // token of another subject: this handle's agent writes for its own ("<subject>/...").
  setToken(token) {
    const subject = token ? tokenSubject(token) : '';
    if (subject && this.agent !== subject && !this.agent.startsWith(`${subject}/`)) {
      throw new Error(`tandem: this document is open as '${this.agent}'; a token for '${subject}' cannot carry its edits (open it again)`);
    }
    if (this.access === 'unauthorized' || this.access === 'forbidden') this.setAccess('unknown', '');
    if (tokenMode(token) === 'read' && this.access !== 'read') this.setAccess('read', '');
    this.token = token;
    this.client.setUrl(socketUrl(this.server, this.docId, token));
  }

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
  // keep their value. Without a colour of its own (#rrggbb), the handle picks one from the
  // palette, starting from the name's, that nobody who came earlier has (see color()).
  setPresence({ name, color, anchor, head } = {}) {
    if (name !== undefined) this.me.name = String(name);
    if (color !== undefined) this.me.color = isColor(color) ? color : '';
    if (anchor !== undefined) this.me.anchor = anchor;
    if (head !== undefined) this.me.head = head;
    this.pickColor(false);
    this.sendPresence();
  }

  // This handle's colour: its own, or the palette's pick among the people present.
  color() { return this.me.color || this.myColor || colorFor(this.me.name || this.agent); }

  sendPresence() {
    const conv = (p) => (p === null || p === undefined ? null : this.replica.from16(p));
    this.client.setPresence(this.me.name || this.agent, this.color(), conv(this.me.anchor), conv(this.me.head ?? this.me.anchor));
  }

  // Keeps the picked colour unlike those of the sessions that joined before this one (a lower
  // session id): a later one gives way, so two people never settle on the same colour.
  pickColor(send = true) {
    if (this.me.color) return;
    const taken = new Set();
    for (const [session, p] of this.client.peers) {
      if (isColor(p.color) && (!this.client.session || session < this.client.session)) taken.add(p.color.toLowerCase());
    }
    const pick = distinctColor(colorFor(this.me.name || this.agent), taken);
    if (pick === this.myColor) return;
    this.myColor = pick;
    if (send && this.client.presence) this.sendPresence();
  }

  // Everyone else on the document: [{session, agent, name, color, anchor, head, movedAt}],
  // positions in UTF-16 offsets of the current text (null: no cursor), movedAt when they last
  // sent their cursor (Date.now() time). Colours are #rrggbb and differ from
  // each other and from this handle's (a peer's announced colour is replaced here when an earlier
  // session, or this one, has it).
  peers() {
    const out = [];
    const used = new Set([this.color().toLowerCase()]);
    const sessions = [...this.client.peers.keys()].sort((a, b) => a - b);
    for (const session of sessions) {
      const p = this.client.peers.get(session);
      const head = p.head === null || p.head === undefined ? null : this.replica.to16(p.head);
      const anchor = p.anchor === null || p.anchor === undefined ? head : this.replica.to16(p.anchor);
      const color = distinctColor(isColor(p.color) ? p.color : colorFor(p.agent), used);
      used.add(color);
      out.push({ session, agent: p.agent, name: p.name || p.agent, color, anchor, head, movedAt: p.at });
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
    return this.store.put(this.docId, this.agent, this.replica.save(), this.client.unsent())
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
//   agent    the agent name for this handle's edits, one it never wrote as here (default: a new
//            one each time; the handle goes on from a stored replica that left edits unsent);
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
  let adopt = null;
  if (agent) {
    if (records.some((r) => r.agent === agent)) throw new Error(`tandem: agent ${agent} already wrote here; open with a new one`);
  } else {
    ({ agent, adopt } = await chooseAgent(docId, records, subject));
  }
  if (!M.Replica.validAgent(agent)) throw new Error(`tandem: not a valid agent name: ${agent}`);
  // A stored replica goes on under the new agent; its unsent edits keep their own.
  let replica = null;
  if (adopt?.state) replica = M.Replica.load(adopt.state, agent);
  else if (adopt?.snapshot) replica = M.Replica.loadSnapshot(adopt.snapshot, adopt.agent, adopt.acked ?? 0, agent);
  if (adopt && !replica) console.error(`tandem: the stored replica of ${docId} does not load; starting afresh`);
  if (!replica) replica = new M.Replica(agent);
  socketUrl(url, docId, token);  // (throws early for a missing or bad server address)
  const doc = new TandemDocument({ docId, replica, store, server: url, token, webSocket, followOnline });
  // The adopted record's edits live on in the new one: saved first, then the old one goes.
  if (adopt && replica) {
    await doc.save();
    await store.remove(docId, adopt.agent);
  }
  if (connect) doc.start();
  return doc;
}
