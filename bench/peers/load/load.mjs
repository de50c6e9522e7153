#!/usr/bin/env node
// Load generator for the peer collaboration servers (y-websocket, Hocuspocus).
//
// Opens C WebSocket clients, client i on document i % D, each typing into a
// Y.Text at R edits/s, and measures the time from an edit being made by one
// client to its arrival at each other client of the same document (all
// clients live in this process and share one clock). Two client
// implementations (--client):
//   lite      (default) a minimal client of each server's protocol built with
//             y-protocols/lib0: real Yjs updates from a Y.Doc per document,
//             received updates decoded but not applied. Cheap enough that one
//             core can drive thousands of connections.
//   provider  the server's own client library: a Y.Doc per client with
//             y-websocket's WebsocketProvider or @hocuspocus/provider's
//             HocuspocusProvider; received updates are integrated.
// See README.md in this folder.
//
//   node load.mjs --server yws|hocuspocus --url ws://127.0.0.1:PORT \
//       --clients C --docs D --rate R --seconds S [--warmup W] [--server-pid PID] [--json]
//   node load.mjs --server yws --url ... --clients C --docs D --idle [--server-pid PID]

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import * as Y from 'yjs';
import WebSocket from 'ws';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';

const USAGE = `usage:
  node load.mjs --server yws|hocuspocus --url ws://127.0.0.1:PORT --clients C --docs D \\
                --rate R --seconds S [--warmup W] [--drain T] [--server-pid PID] [--json]
  node load.mjs --server yws|hocuspocus --url ws://127.0.0.1:PORT --clients C --docs D \\
                --idle [--settle T] [--server-pid PID] [--json]

options:
  --server NAME            yws (y-websocket server) or hocuspocus
  --client KIND            lite (minimal protocol client, default) or provider (the server's
                           own client library, one Y.Doc per client); see README.md
  --url URL                server WebSocket URL, loopback only (default ws://127.0.0.1:1234)
  --clients C              client connections (default 20)
  --docs D                 documents; client i edits document i % D (default 4)
  --rate R                 edits per second per client (default 5)
  --seconds S              measured window in seconds (default 10)
  --warmup W               seconds of typing before the window (default 5)
  --drain T                at most T seconds after typing stops to wait for stragglers (default 5)
  --server-pid PID         read the server's CPU time and memory from /proc/PID
  --idle                   open C connections that do nothing; report server RSS per connection
  --settle T               idle mode: seconds to wait after connecting before reading RSS (default 5)
  --connect-concurrency N  connections being opened at once (default 200)
  --connect-timeout T      seconds allowed for all connections to open and sync (default 300)
  --seed N                 seed of the edit choices (default 1)
  --json                   print one JSON object (one line) instead of text
  --dry-run                print the parsed configuration and exit without connecting
  -h, --help               this text`;

// ---------------------------------------------------------------- arguments

function fail(msg) {
  console.error(`load.mjs: ${msg}\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      server: { type: 'string' },
      client: { type: 'string', default: 'lite' },
      url: { type: 'string', default: 'ws://127.0.0.1:1234' },
      clients: { type: 'string', default: '20' },
      docs: { type: 'string', default: '4' },
      rate: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '5' },
      drain: { type: 'string', default: '5' },
      'server-pid': { type: 'string' },
      idle: { type: 'boolean', default: false },
      settle: { type: 'string', default: '5' },
      'connect-concurrency': { type: 'string', default: '200' },
      'connect-timeout': { type: 'string', default: '300' },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
    strict: true,
  }).values;
} catch (e) {
  fail(e.message);
}
if (parsed.help) {
  console.log(USAGE);
  process.exit(0);
}

function num(name, { min = 0, integer = false } = {}) {
  const v = Number(parsed[name]);
  if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    fail(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got '${parsed[name]}'`);
  }
  return v;
}

const cfg = {
  server: parsed.server,
  client: parsed.client,
  url: parsed.url,
  clients: num('clients', { min: 1, integer: true }),
  docs: num('docs', { min: 1, integer: true }),
  rate: num('rate', { min: 0 }),
  seconds: num('seconds', { min: 0 }),
  warmup: num('warmup', { min: 0 }),
  drain: num('drain', { min: 0 }),
  serverPid: parsed['server-pid'] === undefined ? null : num('server-pid', { min: 1, integer: true }),
  idle: parsed.idle,
  settle: num('settle', { min: 0 }),
  connectConcurrency: num('connect-concurrency', { min: 1, integer: true }),
  connectTimeout: num('connect-timeout', { min: 1 }),
  seed: num('seed', { min: 0, integer: true }),
  json: parsed.json,
};
if (cfg.server !== 'yws' && cfg.server !== 'hocuspocus') fail('--server must be yws or hocuspocus');
if (cfg.client !== 'lite' && cfg.client !== 'provider') fail('--client must be lite or provider');
if (cfg.docs > cfg.clients) fail('--docs must not exceed --clients');
{
  let u;
  try {
    u = new URL(cfg.url);
  } catch {
    fail(`bad --url '${cfg.url}'`);
  }
  if (u.protocol !== 'ws:') fail('--url must be ws://');
  // This tool only ever talks to a server on this machine.
  const h = u.hostname;
  const loopback = h === 'localhost' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
  if (!loopback) fail(`--url must point at a loopback address (127.0.0.0/8, localhost, [::1]), got ${h}`);
  cfg.url = cfg.url.replace(/\/+$/, '');
}
if (cfg.serverPid !== null) {
  try {
    readFileSync(`/proc/${cfg.serverPid}/stat`);
  } catch {
    fail(`--server-pid ${cfg.serverPid}: no such process`);
  }
}
if (parsed['dry-run']) {
  console.log(JSON.stringify({ dry_run: true, ...cfg }));
  process.exit(0);
}

// ---------------------------------------------------------------- helpers

// Version of the package `name` as resolved from here, or (with `from`) as
// resolved from inside the package `from` (a dependency it may nest).
const require = createRequire(import.meta.url);
function pkgVersion(name, from = null) {
  let base = import.meta.url;
  if (from !== null) {
    const dir = findPackageDir(from, require);
    if (dir === null) return null;
    base = `file://${dir}/package.json`;
  }
  const dir = findPackageDir(name, createRequire(base));
  if (dir === null) return null;
  try {
    return JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')).version;
  } catch {
    return null;
  }
}
// Directory of package `name` (found through its module search path: works
// whether or not the package exports ./package.json).
function findPackageDir(name, req) {
  for (const p of req.resolve.paths(name) || []) {
    try {
      readFileSync(`${p}/${name}/package.json`);
      return `${p}/${name}`;
    } catch {
      /* next */
    }
  }
  return null;
}

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  /* keep 100 */
}

// CPU seconds (user+system) and memory of a process, from /proc.
function procSample(pid) {
  if (pid === null) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces; fields after it start 2 chars past the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime (14) + stime (15)
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => {
      const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
      return m ? Number(m[1]) * 1024 : null;
    };
    return { t: performance.now(), cpu, rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

function genSample() {
  const u = process.cpuUsage();
  return { t: performance.now(), cpu: (u.user + u.system) / 1e6 };
}

// Small deterministic PRNG (mulberry32).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(cfg.seed * 2654435761 + 12345);

// Latency histogram: ~1% wide logarithmic buckets over microseconds.
class Histogram {
  constructor() {
    this.counts = new Float64Array(2600); // exp(26) us ~ 2 days
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }
  add(ms) {
    const us = Math.max(0, ms * 1000);
    const i = Math.min(this.counts.length - 1, Math.floor(Math.log1p(us) * 100));
    this.counts[i]++;
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }
  quantile(q) {
    if (this.n === 0) return null;
    const target = q * this.n;
    let acc = 0;
    for (let i = 0; i < this.counts.length; i++) {
      acc += this.counts[i];
      if (acc >= target && this.counts[i] > 0) {
        const mid = Math.expm1((i + 0.5) / 100) / 1000;
        return Math.min(mid, this.max);
      }
    }
    return this.max;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(d)));
const MB = 1024 * 1024;

// ---------------------------------------------------------------- clients

// Providers register a process 'exit' listener each.
process.setMaxListeners(0);

// Document names carry a per-run tag, so that a server that is reused across
// runs never hands a new client the text (and client ids) of an earlier run.
const RUN_TAG = Math.floor(Math.random() * 36 ** 6).toString(36).padStart(6, '0');
const DOC_NAME = (d) => `load-${RUN_TAG}-${d}`;
const TEXT_NAME = 't';

// What clients type: prose with spaces and sentence ends, cycled per client.
const PROSE =
  'Meeting notes for the spring release. We agreed to ship the offline mode first, then the ' +
  'new sharing dialog. Ana will check the import of old files; Raj takes the search index and ' +
  'the migration script. Open question: do we keep the legacy export? Next review on Tuesday.\n';

const errors = { connect_failed: 0, conn_errors: 0, closes: 0 };
let countingErrors = true;
let stopping = false;

// Per document: its clients, and the edits still travelling to them:
//   inserts.get(clientID).get(clock) / deletes.get(clientID).get(clock) -> record
// An insert is keyed by the id of the character it creates, a delete by the id
// of the character it removes. Clients only delete characters they typed
// themselves, so no two clients ever delete the same character. A record is
// { t: send time, win: sent in the window, left: receivers still to reach,
//   got: per receiver 0/1 (lite clients only; providers need no dedup because
//   Yjs integrates each struct and each deletion once) }.
const docs = [];
for (let d = 0; d < cfg.docs; d++) {
  docs.push({ name: DOC_NAME(d), clients: [], inserts: new Map(), deletes: new Map(), shared: null, sender: null });
}
const clients = new Array(cfg.clients);
const localIndex = new Int32Array(cfg.clients); // index of client i among its document's clients
for (let i = 0; i < cfg.clients; i++) {
  const doc = docs[i % cfg.docs];
  localIndex[i] = doc.clients.length;
  doc.clients.push(i);
}

// Measurement state.
const hist = new Histogram();
const phase = { winStart: Infinity, winEnd: Infinity };
const counts = {
  edits_sent: 0, // all edits (warmup included)
  win_edits: 0,
  win_inserts: 0,
  win_deletes: 0,
  win_expected: 0, // deliveries expected for edits sent in the window
  win_observed: 0, // deliveries observed (any time) for edits sent in the window
  deliveries_in_window: 0, // deliveries of any tracked edit observed during the window
  deliveries_total: 0,
  bad_messages: 0,
};

function track(map, client, clock, rec) {
  let m = map.get(client);
  if (m === undefined) {
    m = new Map();
    map.set(client, m);
  }
  m.set(clock, rec);
}

function deliver(m, clock, rec, now, receiver) {
  if (rec.got !== null) {
    if (rec.got[receiver] !== 0) return; // its sender, or a repeat (resync)
    rec.got[receiver] = 1;
  }
  counts.deliveries_total++;
  if (now >= phase.winStart && now < phase.winEnd) counts.deliveries_in_window++;
  if (rec.win) {
    counts.win_observed++;
    hist.add(now - rec.t);
  }
  if (--rec.left === 0) m.delete(clock);
}

// Provider clients: called after every transaction a client's Y.Doc applied
// from the network. New structs are the clock ranges between the transaction's
// state vectors before and after; new deletions are its delete set.
function onRemoteTransaction(c, tr) {
  const doc = docs[c.d];
  const now = performance.now();
  for (const [client, after] of tr.afterState) {
    const before = tr.beforeState.get(client) || 0;
    if (after === before) continue;
    const m = doc.inserts.get(client);
    if (m === undefined) continue;
    for (let k = before; k < after; k++) {
      const rec = m.get(k);
      if (rec !== undefined) deliver(m, k, rec, now, c.local);
    }
  }
  for (const [client, ranges] of tr.deleteSet.clients) {
    const m = doc.deletes.get(client);
    if (m === undefined) continue;
    for (const r of ranges) {
      for (let k = r.clock; k < r.clock + r.len; k++) {
        const rec = m.get(k);
        if (rec !== undefined) deliver(m, k, rec, now, c.local);
      }
    }
  }
}

// Lite clients: called with every Yjs update a client received (sync step 2
// or update message). The update is decoded, not applied.
function onLiteUpdate(c, update) {
  const doc = docs[c.d];
  const now = performance.now();
  let dec;
  try {
    dec = Y.decodeUpdate(update);
  } catch {
    counts.bad_messages++;
    return;
  }
  for (const s of dec.structs) {
    if (s instanceof Y.Skip) continue;
    const m = doc.inserts.get(s.id.client);
    if (m === undefined) continue;
    for (let k = s.id.clock, end = k + s.length; k < end; k++) {
      const rec = m.get(k);
      if (rec !== undefined) deliver(m, k, rec, now, c.local);
    }
  }
  for (const [client, ranges] of dec.ds.clients) {
    const m = doc.deletes.get(client);
    if (m === undefined) continue;
    for (const r of ranges) {
      for (let k = r.clock; k < r.clock + r.len; k++) {
        const rec = m.get(k);
        if (rec !== undefined) deliver(m, k, rec, now, c.local);
      }
    }
  }
}

let ProviderClass = null;
async function loadProvider() {
  if (cfg.client !== 'provider') return;
  if (cfg.server === 'yws') ProviderClass = (await import('y-websocket')).WebsocketProvider;
  else ProviderClass = (await import('@hocuspocus/provider')).HocuspocusProvider;
}

// Version string the Hocuspocus provider sends in its authentication message.
const HOCUSPOCUS_PROVIDER_VERSION = pkgVersion('@hocuspocus/provider') || '4.7.0';
const EMPTY_STATE_VECTOR = new Uint8Array([0]);
const AWARENESS_RENEW_MS = 15000; // y-protocols renews the local awareness state every 15 s

// A minimal client of the server's protocol, written with y-protocols' message
// layout and lib0's encoders: the same handshake, sync, update, awareness and
// (Hocuspocus) authentication/ping messages as the provider sends. It keeps no
// Y.Doc of its own: it sends updates made on the document's shared Y.Doc (see
// makeEdit) and decodes, without applying, the updates it receives.
class LiteConn {
  constructor(c, onSynced) {
    this.c = c;
    this.doc = docs[c.d];
    this.onSynced = onSynced;
    this.hp = cfg.server === 'hocuspocus';
    this.url = this.hp ? cfg.url : `${cfg.url}/${this.doc.name}`;
    this.ws = null;
    this.awClock = 0;
    this.awAt = 0;
    this.open();
  }
  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.on('open', () => this.handshake());
    ws.on('message', (data) => this.onMessage(data));
    ws.on('error', () => {
      if (countingErrors) errors.conn_errors++;
    });
    ws.on('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (stopping) return;
      if (countingErrors) errors.closes++;
      setTimeout(() => !stopping && this.open(), 1000);
    });
  }
  encoder(type) {
    const e = encoding.createEncoder();
    if (this.hp) encoding.writeVarString(e, this.doc.name);
    encoding.writeVarUint(e, type);
    return e;
  }
  send(e) {
    if (this.ws !== null && this.ws.readyState === WebSocket.OPEN) this.ws.send(encoding.toUint8Array(e));
  }
  handshake() {
    if (this.hp) {
      const e = this.encoder(2); // Auth: token (none), then the provider version
      encoding.writeVarUint(e, 0);
      encoding.writeVarString(e, '');
      encoding.writeVarString(e, HOCUSPOCUS_PROVIDER_VERSION);
      this.send(e);
    }
    const e = this.encoder(0); // Sync step 1 with an empty state vector: send me everything
    encoding.writeVarUint(e, syncProtocol.messageYjsSyncStep1);
    encoding.writeVarUint8Array(e, EMPTY_STATE_VECTOR);
    this.send(e);
    this.sendAwareness();
  }
  sendAwareness() {
    // One awareness state {} for this client; the clock grows on each renewal.
    const u = encoding.createEncoder();
    encoding.writeVarUint(u, 1);
    encoding.writeVarUint(u, this.c.id);
    encoding.writeVarUint(u, this.awClock);
    encoding.writeVarString(u, '{}');
    const e = this.encoder(1);
    encoding.writeVarUint8Array(e, encoding.toUint8Array(u));
    this.send(e);
    this.awAt = performance.now();
  }
  renewAwareness(now) {
    if (this.ws !== null && now - this.awAt >= AWARENESS_RENEW_MS) {
      this.awClock++;
      this.sendAwareness();
    }
  }
  sendUpdate(update) {
    const e = this.encoder(0);
    syncProtocol.writeUpdate(e, update);
    this.send(e);
  }
  onMessage(buf) {
    try {
      if (this.hp && buf.length === 1 && buf[0] === 9) {
        this.ws.send(new Uint8Array([10])); // application-level ping -> pong
        return;
      }
      const dec = decoding.createDecoder(buf);
      if (this.hp) decoding.readVarString(dec); // document name
      const type = decoding.readVarUint(dec);
      if (type === 0) {
        const step = decoding.readVarUint(dec);
        if (step === syncProtocol.messageYjsSyncStep1) {
          // Server's sync step 1: answer with what it lacks of the document.
          const e = this.encoder(0);
          syncProtocol.writeSyncStep2(e, this.doc.shared, decoding.readVarUint8Array(dec));
          this.send(e);
        } else if (step === syncProtocol.messageYjsSyncStep2 || step === syncProtocol.messageYjsUpdate) {
          onLiteUpdate(this.c, decoding.readVarUint8Array(dec));
          if (step === syncProtocol.messageYjsSyncStep2) this.onSynced();
        }
      } else if (type === 2 && this.hp) {
        if (decoding.readVarUint(dec) === 1 && countingErrors) errors.conn_errors++; // permission denied
      } else if (type === 3) {
        this.sendAwareness(); // query awareness
      }
      // 1 awareness of others, 8 sync status (Hocuspocus): nothing to do.
    } catch {
      counts.bad_messages++;
    }
  }
  close() {
    const ws = this.ws;
    this.ws = null;
    if (ws !== null) ws.close();
  }
}

let awarenessTimer = null;
function startAwarenessRenewal() {
  if (cfg.client !== 'lite' || awarenessTimer !== null) return;
  awarenessTimer = setInterval(() => {
    const now = performance.now();
    for (const c of clients) if (c && c.conn) c.conn.renewAwareness(now);
  }, 1000);
}

// Creates client i; calls done(ok) once, when it first synced or gave up.
function startClient(i, done) {
  const d = i % cfg.docs;
  const doc = docs[d];
  const c = {
    i,
    d,
    local: localIndex[i],
    id: 1000000 + i, // unique, non-zero Yjs client ids
    ydoc: null,
    text: null,
    provider: null,
    conn: null,
    synced: false,
    cursor: null, // Y.RelativePosition of the caret, or null
    jumpTo: null, // absolute index for the next insert after a jump
    own: [], // clocks of this client's recent characters still in the text (for backspace)
    prose: Math.floor(rand() * PROSE.length),
  };
  clients[i] = c;

  let finished = false;
  const finish = (ok) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (!ok) errors.connect_failed++;
    done(ok);
  };
  const timer = setTimeout(() => finish(false), 60000);
  const onSynced = () => {
    if (!c.synced) {
      c.synced = true;
      finish(true);
    }
  };

  if (cfg.client === 'lite') {
    if (doc.shared === null) {
      doc.shared = new Y.Doc();
      doc.shared.on('update', (update) => {
        if (doc.sender !== null) doc.sender.conn.sendUpdate(update);
      });
    }
    c.ydoc = doc.shared;
    c.text = doc.shared.getText(TEXT_NAME);
    c.conn = new LiteConn(c, onSynced);
    return;
  }

  c.ydoc = new Y.Doc();
  c.ydoc.clientID = c.id;
  c.text = c.ydoc.getText(TEXT_NAME);
  c.ydoc.on('afterTransaction', (tr) => {
    if (!tr.local) onRemoteTransaction(c, tr);
  });
  if (cfg.server === 'yws') {
    const p = new ProviderClass(cfg.url, doc.name, c.ydoc, {
      WebSocketPolyfill: WebSocket,
      // All clients live in one process: a BroadcastChannel would carry updates
      // between them without the server. Off, so that everything goes over the wire.
      disableBc: true,
    });
    p.on('sync', (s) => s && onSynced());
    p.on('connection-error', () => countingErrors && errors.conn_errors++);
    p.on('connection-close', () => countingErrors && errors.closes++);
    c.provider = p;
  } else {
    const p = new ProviderClass({
      url: cfg.url,
      name: doc.name,
      document: c.ydoc,
      WebSocketPolyfill: WebSocket,
    });
    p.on('synced', () => onSynced());
    p.on('authenticationFailed', () => countingErrors && errors.conn_errors++);
    p.configuration.websocketProvider.on('disconnect', () => countingErrors && errors.closes++);
    c.provider = p;
  }
}

async function connectAll() {
  const t0 = performance.now();
  startAwarenessRenewal();
  let next = 0;
  let inflight = 0;
  let ok = 0;
  await new Promise((resolve) => {
    const deadline = setTimeout(resolve, cfg.connectTimeout * 1000);
    const pump = () => {
      while (inflight < cfg.connectConcurrency && next < cfg.clients) {
        inflight++;
        startClient(next++, (good) => {
          inflight--;
          if (good) ok++;
          pump();
        });
      }
      if (next >= cfg.clients && inflight === 0) {
        clearTimeout(deadline);
        resolve();
      }
    };
    pump();
  });
  // Clients that never got to start within the deadline count as failed.
  errors.connect_failed += cfg.clients - next;
  return { seconds: (performance.now() - t0) / 1000, synced: ok };
}

function shutdown() {
  countingErrors = false;
  stopping = true;
  if (awarenessTimer !== null) clearInterval(awarenessTimer);
  for (const c of clients) {
    if (!c) continue;
    try {
      if (c.provider) c.provider.destroy();
      if (c.conn) c.conn.close();
    } catch {
      /* ignore */
    }
  }
}

// ---------------------------------------------------------------- editing

const JUMP_P = 0.03; // move the caret to a random place, then type there
const BACKSPACE_P = 0.1; // delete this client's last typed character

// One edit by client c. Provider clients edit their own Y.Doc (the provider
// sends the update). Lite clients edit their document's shared Y.Doc under
// their own client id; its 'update' handler sends the update on c's socket.
function makeEdit(c, now) {
  const doc = docs[c.d];
  const n = doc.clients.length;
  const others = n - 1;
  const { ydoc, text } = c;
  const me = c.id;
  if (cfg.client === 'lite') {
    ydoc.clientID = me;
    doc.sender = c;
  }
  const inWin = now >= phase.winStart && now < phase.winEnd;
  const rec = () => {
    const r = { t: now, win: inWin, left: others, got: null };
    if (cfg.client === 'lite') {
      r.got = new Uint8Array(n);
      r.got[c.local] = 1;
    }
    return r;
  };
  try {
    const r = rand();
    if (r < BACKSPACE_P && c.own.length > 0) {
      // Backspace over our own last character (only its author ever deletes it).
      const clock = c.own.pop();
      const id = Y.createID(me, clock);
      const pos = Y.createAbsolutePositionFromRelativePosition(new Y.RelativePosition(null, TEXT_NAME, id, 0), ydoc);
      if (pos !== null) {
        if (others > 0) track(doc.deletes, me, clock, rec());
        text.delete(pos.index, 1);
        // The caret stays where the deleted character was.
        c.cursor = new Y.RelativePosition(null, TEXT_NAME, id, 0);
        count(inWin, others, false);
        return;
      }
    }

    let index;
    if (r >= 1 - JUMP_P || c.cursor === null) c.jumpTo = Math.floor(rand() * (text.length + 1));
    if (c.jumpTo !== null) {
      index = Math.min(c.jumpTo, text.length);
      c.jumpTo = null;
      c.own.length = 0;
    } else {
      const pos = Y.createAbsolutePositionFromRelativePosition(c.cursor, ydoc);
      index = pos === null ? text.length : pos.index;
    }
    const ch = PROSE[c.prose];
    c.prose = (c.prose + 1) % PROSE.length;
    const clock = Y.getState(ydoc.store, me);
    if (others > 0) track(doc.inserts, me, clock, rec());
    text.insert(index, ch);
    c.own.push(clock);
    if (c.own.length > 32) c.own.shift();
    // Caret right after the character just typed.
    c.cursor = new Y.RelativePosition(null, TEXT_NAME, Y.createID(me, clock), -1);
    count(inWin, others, true);
  } finally {
    doc.sender = null;
  }
}

function count(inWin, others, isInsert) {
  counts.edits_sent++;
  if (inWin) {
    counts.win_edits++;
    if (isInsert) counts.win_inserts++;
    else counts.win_deletes++;
    counts.win_expected += others;
  }
}

// Open-loop schedule: edit n (over all clients) is due at start + n / (C * R),
// and goes to client order[n % C]; so each client edits every 1/R s, phases
// spread evenly. Edits more than MAX_LAG_MS overdue are skipped and counted:
// the generator could not keep up.
const MAX_LAG_MS = 1000;
function startTyping(active) {
  const total = active.length * cfg.rate;
  const order = active.slice();
  for (let k = order.length - 1; k > 0; k--) {
    const j = Math.floor(rand() * (k + 1));
    [order[k], order[j]] = [order[j], order[k]];
  }
  const start = performance.now();
  let n = 0;
  const st = { skipped: 0, win_skipped: 0, stop: null };
  if (total <= 0 || order.length === 0) {
    st.stop = () => {};
    return st;
  }
  const interval = 1000 / total;
  const tick = () => {
    const now = performance.now();
    while (start + n * interval <= now) {
      const due = start + n * interval;
      if (now - due > MAX_LAG_MS) {
        st.skipped++;
        if (due >= phase.winStart && due < phase.winEnd) st.win_skipped++;
      } else {
        makeEdit(order[n % order.length], performance.now());
      }
      n++;
    }
  };
  const timer = setInterval(tick, 2);
  st.stop = () => clearInterval(timer);
  return st;
}

// ---------------------------------------------------------------- runs

function versions() {
  const v = { node: process.versions.node, yjs: pkgVersion('yjs'), ws: pkgVersion('ws') };
  if (cfg.client === 'lite') {
    v['y-protocols'] = pkgVersion('y-protocols');
    v.lib0 = pkgVersion('lib0');
  }
  if (cfg.server === 'yws') {
    v['y-websocket'] = pkgVersion('y-websocket');
    v['@y/websocket-server'] = pkgVersion('@y/websocket-server');
    v['ws (server)'] = pkgVersion('ws', '@y/websocket-server');
  } else {
    v['@hocuspocus/provider'] = pkgVersion('@hocuspocus/provider');
    v['@hocuspocus/server'] = pkgVersion('@hocuspocus/server');
    v['crossws (server)'] = pkgVersion('crossws', '@hocuspocus/server');
  }
  return v;
}

async function runIdle() {
  const before = procSample(cfg.serverPid);
  const conn = await connectAll();
  const connected = procSample(cfg.serverPid);
  await sleep(cfg.settle * 1000);
  const after = procSample(cfg.serverPid);
  const result = {
    server: cfg.server,
    client: cfg.client,
    mode: 'idle',
    date: new Date().toISOString(),
    clients: cfg.clients,
    docs: cfg.docs,
    connect_s: round(conn.seconds, 2),
    synced: conn.synced,
    errors: { ...errors },
    server_rss_before_mb: before && round(before.rss / MB, 1),
    server_rss_after_mb: after && round(after.rss / MB, 1),
    server_rss_per_conn_kb: before && after ? round((after.rss - before.rss) / cfg.clients / 1024, 2) : null,
    server_peak_rss_mb: after && round(after.hwm / MB, 1),
    // Server CPU while the connections sat idle (pings, awareness renewals).
    server_idle_cpu_util: connected && after ? round((after.cpu - connected.cpu) / ((after.t - connected.t) / 1000), 4) : null,
    gen_peak_rss_mb: round((process.resourceUsage().maxRSS * 1024) / MB, 1),
    versions: versions(),
  };
  return result;
}

async function runLoad() {
  const rssBefore = procSample(cfg.serverPid);
  const conn = await connectAll();
  const rssConnected = procSample(cfg.serverPid);
  const active = clients.filter((c) => c && c.synced);

  const loop = monitorEventLoopDelay({ resolution: 10 });
  const t0 = performance.now();
  phase.winStart = t0 + cfg.warmup * 1000;
  phase.winEnd = phase.winStart + cfg.seconds * 1000;
  const typing = startTyping(active);

  // Wait for the window; take samples at its edges.
  await sleep(Math.max(0, phase.winStart - performance.now()));
  const s0 = procSample(cfg.serverPid);
  const g0 = genSample();
  loop.enable();
  await sleep(Math.max(0, phase.winEnd - performance.now()));
  const s1 = procSample(cfg.serverPid);
  const g1 = genSample();
  loop.disable();
  typing.stop();

  // Drain: wait for the window's edits to reach everyone, at most --drain s.
  const drainStart = performance.now();
  while (counts.win_observed < counts.win_expected && performance.now() - drainStart < cfg.drain * 1000) {
    await sleep(50);
  }
  const drainSeconds = (performance.now() - drainStart) / 1000;
  const s2 = procSample(cfg.serverPid);

  const win = (s1 && s0 ? s1.t - s0.t : g1.t - g0.t) / 1000;
  const genWin = (g1.t - g0.t) / 1000;
  const serverCpu = s0 && s1 ? s1.cpu - s0.cpu : null;
  const genCpu = g1.cpu - g0.cpu;
  const expectedPerSec = docs.reduce((a, d) => a + d.clients.length * cfg.rate * (d.clients.length - 1), 0);
  const result = {
    server: cfg.server,
    client: cfg.client,
    mode: 'load',
    date: new Date().toISOString(),
    clients: cfg.clients,
    docs: cfg.docs,
    rate: cfg.rate,
    seconds: cfg.seconds,
    warmup: cfg.warmup,
    connect_s: round(conn.seconds, 2),
    synced: conn.synced,
    edits_target_per_s: round(active.length * cfg.rate, 1),
    edits_per_s: round(counts.win_edits / genWin, 1),
    edits_window: counts.win_edits,
    inserts_window: counts.win_inserts,
    deletes_window: counts.win_deletes,
    edits_skipped_window: typing.win_skipped,
    deliveries_target_per_s: round(expectedPerSec, 1),
    deliveries_per_s: round(counts.deliveries_in_window / genWin, 1),
    deliveries_expected: counts.win_expected,
    deliveries_observed: counts.win_observed,
    undelivered: counts.win_expected - counts.win_observed,
    drain_s: round(drainSeconds, 2),
    latency_ms: {
      p50: round(hist.quantile(0.5)),
      p90: round(hist.quantile(0.9)),
      p99: round(hist.quantile(0.99)),
      max: round(hist.max),
      mean: hist.n ? round(hist.sum / hist.n) : null,
      samples: hist.n,
    },
    errors: { ...errors },
    bad_messages: counts.bad_messages,
    server_cpu_s: round(serverCpu, 2),
    server_cpu_util: serverCpu === null ? null : round(serverCpu / win, 3),
    server_us_per_edit: serverCpu === null || counts.win_edits === 0 ? null : round((serverCpu * 1e6) / counts.win_edits, 1),
    server_rss_before_mb: rssBefore && round(rssBefore.rss / MB, 1),
    server_rss_connected_mb: rssConnected && round(rssConnected.rss / MB, 1),
    server_rss_end_mb: s2 && round(s2.rss / MB, 1),
    server_peak_rss_mb: s2 && round(s2.hwm / MB, 1),
    gen_cpu_s: round(genCpu, 2),
    gen_cpu_util: round(genCpu / genWin, 3),
    gen_loop_delay_p99_ms: round(loop.percentile(99) / 1e6, 2),
    gen_loop_delay_max_ms: round(loop.max / 1e6, 2),
    gen_peak_rss_mb: round((process.resourceUsage().maxRSS * 1024) / MB, 1),
    versions: versions(),
  };
  // Which side ran out of CPU. The generator is saturated when it used most of
  // its core, skipped overdue edits, or its event loop was late: then latency
  // and throughput describe the generator, not (only) the server.
  result.generator_saturated =
    result.gen_cpu_util >= 0.9 || typing.win_skipped > 0 || (result.gen_loop_delay_p99_ms ?? 0) >= 100;
  result.server_saturated = result.server_cpu_util === null ? null : result.server_cpu_util >= 0.9;
  return result;
}

function printText(r) {
  const lines = [];
  const kv = (k, v) => lines.push(`  ${k.padEnd(26)} ${v}`);
  lines.push(`${r.server} ${r.mode} (${r.client} clients): clients=${r.clients} docs=${r.docs}` + (r.mode === 'load' ? ` rate=${r.rate}/s window=${r.seconds}s warmup=${r.warmup}s` : ''));
  kv('connect (all synced)', `${r.connect_s} s, ${r.synced}/${r.clients} synced`);
  if (r.mode === 'idle') {
    kv('server RSS before/after', `${r.server_rss_before_mb} / ${r.server_rss_after_mb} MiB`);
    kv('server RSS per connection', `${r.server_rss_per_conn_kb} KiB`);
    kv('server CPU while idle', `${r.server_idle_cpu_util} of a core`);
  } else {
    kv('edits/s (target)', `${r.edits_per_s} (${r.edits_target_per_s}), skipped ${r.edits_skipped_window}`);
    kv('edits in window', `${r.edits_window} (${r.inserts_window} inserts, ${r.deletes_window} deletes)`);
    kv('deliveries/s (target)', `${r.deliveries_per_s} (${r.deliveries_target_per_s})`);
    kv('deliveries expected/seen', `${r.deliveries_expected} / ${r.deliveries_observed}, undelivered ${r.undelivered} (drain ${r.drain_s} s)`);
    const l = r.latency_ms;
    kv('latency ms p50/p90/p99/max', `${l.p50} / ${l.p90} / ${l.p99} / ${l.max}  (${l.samples} samples)`);
    kv('server CPU', r.server_cpu_s === null ? 'n/a (no --server-pid)' : `${r.server_cpu_s} s (${r.server_cpu_util} of a core), ${r.server_us_per_edit} us/edit`);
    kv('server RSS before/conn/end', `${r.server_rss_before_mb} / ${r.server_rss_connected_mb} / ${r.server_rss_end_mb} MiB`);
    kv('generator CPU', `${r.gen_cpu_s} s (${r.gen_cpu_util} of a core), loop delay p99 ${r.gen_loop_delay_p99_ms} ms, max ${r.gen_loop_delay_max_ms} ms`);
    kv('saturated', `server ${r.server_saturated ?? 'n/a'}, generator ${r.generator_saturated}`);
    if (r.generator_saturated) lines.push('  WARNING: the load generator was saturated; these numbers are a floor for the server, not its limit');
  }
  kv('server peak RSS (VmHWM)', `${r.server_peak_rss_mb} MiB`);
  kv('generator peak RSS', `${r.gen_peak_rss_mb} MiB`);
  kv('errors', JSON.stringify(r.errors));
  console.log(lines.join('\n'));
}

let exiting = false;
process.on('SIGINT', () => {
  if (exiting) process.exit(130);
  exiting = true;
  shutdown();
  setTimeout(() => process.exit(130), 500);
});

await loadProvider();
const result = cfg.idle ? await runIdle() : await runLoad();
shutdown();
if (cfg.json) console.log(JSON.stringify(result));
else printText(result);
// Give the close frames a moment, then leave (providers keep timers alive).
setTimeout(() => process.exit(0), 300);
