// The transport of the protocol client (docs/protocol.md section 10) for the browser: one
// WebSocket per document, reconnects and their timer, and the presence throttle. Everything the
// protocol decides (HELLO, what WELCOME, OPS, ACK and ERROR mean, what to send, what is unsent,
// whether and when to retry) is the engine's: the replica's sync::ClientSync, compiled to
// WebAssembly with it, the same code the native client and the server's tests run.

const PRESENCE_MS = 50;

export class SyncClient {
  // replica: an engine Replica (it carries the protocol's state). Callbacks: onRemote(patches)
  // for remote changes, onStatus(status, detail), onPresence(peers Map), onProgress() when the
  // count of unsent edits may have changed, onWelcome(readOnly) when the server took the session,
  // onStopped(code, message) when it refused it in a way another try cannot fix.
  // webSocket: the WebSocket class (default globalThis.WebSocket; on Node.js 18, e.g. the `ws`
  // package's).
  constructor({ url, replica, onRemote, onStatus, onPresence, onProgress, onWelcome, onStopped, webSocket }) {
    this.url = url;
    this.WebSocket = webSocket || globalThis.WebSocket;
    this.replica = replica;
    this.onRemote = onRemote;
    this.onStatus = onStatus;
    this.onPresence = onPresence;
    this.onProgress = onProgress;
    this.onWelcome = onWelcome;
    this.onStopped = onStopped;
    this.session = 0;        // this session's id, from WELCOME
    this.status = 'offline';
    this.ws = null;
    this.timer = null;
    this.stopped = true;
    this.refusal = null;     // {code, message}: why the server stopped this client for good
    this.peers = new Map();  // session -> {agent, name, color, anchor, head, at} (code points)
    this.presence = false;   // whether own presence was set
    this.presenceTimer = null;
  }

  unsent() { return this.replica.unsent(); }
  get welcomed() { return this.replica.welcomed(); }
  get readOnly() { return this.replica.readOnly(); }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.refusal = null;
    this.replica.resetBackoff();
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
      console.warn(`tandem: cannot open ${this.url}: ${e}`);
      this.lost();
      this.retry();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => ws.send(this.replica.open());
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') return this.drop('a text frame from the server');
      this.receive(ev.data instanceof ArrayBuffer ? new Uint8Array(ev.data) : ev.data);
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
    this.replica.closed();
    if (this.peers.size) {
      this.peers.clear();
      this.onPresence?.(this.peers);
    }
    if (!this.stopped || this.status !== 'offline') this.setStatus('offline');
  }

  retry() {
    if (this.stopped) return;
    if (!this.replica.shouldRetry()) {
      const e = this.replica.error();
      this.stopped = true;
      this.refusal = e;
      this.setStatus('offline', e.message);
      this.onStopped?.(e.code, e.message);
      return;
    }
    const delay = this.replica.retryDelay(performance.now(), 0.5 + Math.random() / 2);
    this.timer = setTimeout(() => this.connect(), delay);
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
    this.replica.resetBackoff();
    this.connect();
  }

  // Reconnects now (the browser came back online).
  reconnectNow() {
    if (this.stopped) return this.start();
    if (this.ws) return;
    clearTimeout(this.timer);
    this.replica.resetBackoff();
    this.connect();
  }

  receive(bytes) {
    const ev = this.replica.receive(bytes, performance.now());
    if (ev.error) return this.drop(`the server's message does not apply: ${ev.error}`);
    switch (ev.kind) {
      case 'welcome':
        this.session = ev.session;
        this.setStatus('connected');
        this.onWelcome?.(ev.readOnly);
        this.flush();
        this.onProgress?.();
        break;
      case 'change':
        if (ev.patches.length || ev.formats) this.onRemote?.(ev.patches, ev.formats);
        this.flush();
        break;
      case 'ack':
        this.onProgress?.();
        break;
      case 'presence':
        this.peers.set(ev.session, { agent: ev.agent, name: ev.name, color: ev.color, anchor: ev.anchor, head: ev.head, at: Date.now() });
        this.onPresence?.(this.peers);
        break;
      case 'leave':
        if (this.peers.delete(ev.session)) this.onPresence?.(this.peers);
        break;
      case 'error':
        console.warn(`tandem: server error ${ev.code}: ${ev.message}`);
        break;
    }
  }

  // Sends what the protocol has to send now: own presence, own operations not yet sent.
  flush() {
    if (!this.ws || this.ws.readyState !== 1 /* OPEN */) return;
    for (const m of this.replica.outgoing()) this.ws.send(m);
  }

  // Own cursor, in code points (null: none); sent at most every 50 ms.
  setPresence(name, color, anchor, head) {
    this.replica.setPresence(name, color, anchor ?? -1, head ?? -1);
    this.presence = true;
    if (this.presenceTimer) return;
    this.presenceTimer = setTimeout(() => {
      this.presenceTimer = null;
      this.flush();
    }, PRESENCE_MS);
  }
}
