// The protocol client of docs/protocol.md (section 10, "Writing a client"), for the browser:
// one WebSocket per document, HELLO/WELCOME, own operations sent until acknowledged durable,
// remote OPS applied whole, presence, reconnect with exponential backoff and jitter.
import { encode, decode } from './wire.js';

const HELLO = 1, OPS = 2, ACK = 3, PRESENCE = 4, PRESENCE_UPDATE = 5, LEAVE = 6, WELCOME = 10, ERROR = 15;
const PROTOCOL_VERSION = 1;
// Errors that retrying cannot fix (section 10, step 10); after 4401 and 4403 a new token may.
const TERMINAL = new Set([4400, 4401, 4403, 4409, 4410, 4413, 4422, 4426]);
const MAX_BATCH_EVENTS = 100000;
const MAX_BATCH_BYTES = 512 * 1024;  // half the server's default message limit
const MIN_BACKOFF_MS = 100, MAX_BACKOFF_MS = 10000;

export class SyncClient {
  // replica: an engine Replica. acked: own events already known durable (from storage).
  // Callbacks: onRemote(patches) for remote changes, onStatus(status, detail),
  // onPresence(peers Map), onProgress() when the count of unsent edits may have changed,
  // onWelcome(readOnly) when the server took the session, onStopped(code, message) when it
  // refused it in a way another try cannot fix.
  // webSocket: the WebSocket class (default globalThis.WebSocket; on Node.js 18, e.g. the `ws`
  // package's).
  constructor({ url, replica, acked = 0, onRemote, onStatus, onPresence, onProgress, onWelcome, onStopped, webSocket }) {
    this.url = url;
    this.WebSocket = webSocket || globalThis.WebSocket;
    this.replica = replica;
    this.acked = acked;
    this.onRemote = onRemote;
    this.onStatus = onStatus;
    this.onPresence = onPresence;
    this.onProgress = onProgress;
    this.onWelcome = onWelcome;
    this.onStopped = onStopped;
    this.session = 0;        // this session's id, from WELCOME
    this.status = 'offline';
    this.ws = null;
    this.welcomed = false;
    this.readOnly = false;
    this.sent = 0;           // own seq sent on this connection
    this.batches = new Map(); // batch id -> own seq it reaches
    this.nextBatch = 1;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.error = null;
    this.refusal = null;     // {code, message}: why the server stopped this client for good
    this.peers = new Map();  // session -> {agent, name, color, anchor, head} (code points)
    this.presence = null;    // own [name, color, anchor, head]
    this.presenceTimer = null;
    this.welcomeAt = 0;
  }

  unsent() { return Math.max(0, this.replica.ownNext() - this.acked); }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.error = null;
    this.refusal = null;
    this.attempt = 0;
    this.connect();
  }

  // Stops and stays offline until start(): used for the browser going offline.
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.closeSocket('offline');
    this.lost();
  }

  // Closes the connection, if any, without hearing from it again.
  closeSocket(reason) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onclose = ws.onmessage = ws.onopen = ws.onerror = null;
    try { ws.close(1000, reason); } catch { /* already closing */ }
  }

  setStatus(s, detail) {
    if (this.status === s && !detail) return;
    this.status = s;
    this.onStatus?.(s, detail);
  }

  connect() {
    this.timer = null;
    if (this.stopped) return;
    this.setStatus('connecting');
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (e) {
      this.error = { code: 0, message: String(e) };
      this.lost();
      this.retry();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.lastError = null;
    ws.onopen = () => this.send([HELLO, PROTOCOL_VERSION, [this.replica.agent()], this.replica.version()]);
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') return this.drop('a text frame from the server');
      let msg;
      try {
        msg = decode(ev.data instanceof ArrayBuffer ? new Uint8Array(ev.data) : ev.data);
      } catch (e) {
        return this.drop(`undecodable message: ${e.message}`);
      }
      if (!Array.isArray(msg) || typeof msg[0] !== 'number') return this.drop('a message that is not [type, ...]');
      this.receive(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lost();
      this.retry();
    };
    ws.onerror = () => {};  // onclose follows
  }

  // A protocol violation by the server: drop the connection; the next one starts afresh.
  drop(why) {
    console.warn(`tandem: ${why}; reconnecting`);
    try { this.ws?.close(4400, 'bad message'); } catch { /* closed */ }
  }

  lost() {
    this.welcomed = false;
    this.batches.clear();
    if (this.peers.size) {
      this.peers.clear();
      this.onPresence?.(this.peers);
    }
    if (!this.stopped || this.status !== 'offline') this.setStatus('offline');
  }

  retry() {
    if (this.stopped) return;
    if (this.lastError && TERMINAL.has(this.lastError.code)) {
      this.stopped = true;
      this.refusal = this.lastError;
      this.setStatus('offline', this.lastError.message);
      this.onStopped?.(this.lastError.code, this.lastError.message);
      return;
    }
    // A connection that lived a while resets the backoff (section 10, step 10).
    if (this.welcomeAt && performance.now() - this.welcomeAt > 5000) this.attempt = 0;
    this.welcomeAt = 0;
    const base = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    this.timer = setTimeout(() => this.connect(), base * (0.5 + Math.random() / 2));
  }

  // A new address (a fresh token in it): an open connection is replaced at once, a client stopped
  // for its token (4401, 4403) starts again, a stopped one (offline) uses it when started.
  setUrl(url) {
    this.url = url;
    if (this.stopped) {
      if (this.refusal && (this.refusal.code === 4401 || this.refusal.code === 4403)) this.start();
      return;
    }
    if (this.ws) {
      this.closeSocket('new token');
      this.lost();
    }
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  // Reconnects now (the browser came back online).
  reconnectNow() {
    if (this.stopped) return this.start();
    if (this.ws) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  send(msg) {
    if (this.ws && this.ws.readyState === 1 /* OPEN */) this.ws.send(encode(msg));
  }

  receive(msg) {
    switch (msg[0]) {
      case WELCOME: {
        const [, , session, readOnly, version] = msg;
        this.welcomed = true;
        this.session = session;
        this.welcomeAt = performance.now();
        this.readOnly = !!readOnly;
        // Own operations within the server's durable version are safe; everything beyond it is
        // sent (again), even what an earlier ACK covered, in case the server lost it since.
        const agent = this.replica.agent();
        let durable = 0;
        for (let i = 0; i + 1 < version.length; i += 2) {
          if (version[i] === agent) durable = version[i + 1];
        }
        this.acked = Math.max(this.acked, durable);
        this.sent = durable;
        this.batches.clear();
        this.setStatus('connected');
        this.onWelcome?.(this.readOnly);
        if (this.presence) this.send([PRESENCE, ...this.presence]);
        this.flush();
        this.onProgress?.();
        break;
      }
      case OPS: {
        const r = this.replica.apply(msg[2]);
        if (r.error) return this.drop(`the server's operations do not apply: ${r.error}`);
        if (r.patches.length) this.onRemote?.(r.patches);
        break;
      }
      case ACK: {
        const reach = this.batches.get(msg[1]);
        if (reach === undefined) break;
        this.batches.delete(msg[1]);
        this.acked = Math.max(this.acked, reach);
        this.attempt = 0;
        this.onProgress?.();
        break;
      }
      case PRESENCE_UPDATE: {
        const [, session, agent, name, color, anchor, head] = msg;
        this.peers.set(session, { agent, name, color, anchor, head, at: Date.now() });
        this.onPresence?.(this.peers);
        break;
      }
      case LEAVE:
        if (this.peers.delete(msg[1])) this.onPresence?.(this.peers);
        break;
      case ERROR:
        this.lastError = { code: msg[1], message: msg[2] };
        console.warn(`tandem: server error ${msg[1]}: ${msg[2]}`);
        break;
      default:
        this.drop(`unknown message type ${msg[0]}`);
    }
  }

  // Sends own operations the server has not been sent on this connection.
  flush() {
    if (!this.welcomed || this.readOnly) return;
    const next = this.replica.ownNext();
    if (next <= this.sent) return;
    const parts = this.replica.ownOpsSince(this.sent, MAX_BATCH_EVENTS, MAX_BATCH_BYTES);
    parts.forEach((bytes, i) => {
      const id = this.nextBatch++;
      // Only the last part's ACK tells how far this flush is durable (each part depends on the
      // ones before it); earlier parts' ACKs add nothing.
      this.batches.set(id, i === parts.length - 1 ? next : 0);
      this.send([OPS, id, bytes]);
    });
    this.sent = next;
  }

  // Own cursor, in code points; sent at most every 50 ms.
  setPresence(name, color, anchor, head) {
    this.presence = [name, color, anchor, head];
    if (this.presenceTimer) return;
    this.presenceTimer = setTimeout(() => {
      this.presenceTimer = null;
      if (this.welcomed && this.presence) this.send([PRESENCE, ...this.presence]);
    }, 50);
  }
}
