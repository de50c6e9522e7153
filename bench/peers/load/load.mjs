#!/usr/bin/env node
// Load generator for the peer collaboration servers (y-websocket, Hocuspocus).
//
// Opens C real Yjs clients (each a Y.Doc with the server's own provider:
// y-websocket's WebsocketProvider or @hocuspocus/provider's HocuspocusProvider,
// one WebSocket each), client i on document i % D. Every client types into a
// Y.Text at R edits/s. The time from an edit being made on one client to it
// being integrated into each other client of the same document is measured
// in this process (all clients share one clock). See README.md in this folder.
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

const USAGE = `usage:
  node load.mjs --server yws|hocuspocus --url ws://127.0.0.1:PORT --clients C --docs D \\
                --rate R --seconds S [--warmup W] [--drain T] [--server-pid PID] [--json]
  node load.mjs --server yws|hocuspocus --url ws://127.0.0.1:PORT --clients C --docs D \\
                --idle [--settle T] [--server-pid PID] [--json]

options:
  --server NAME            yws (y-websocket server) or hocuspocus
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

const DOC_NAME = (d) => `load-${d}`;
const TEXT_NAME = 't';

// What clients type: prose with spaces and sentence ends, cycled per client.
const PROSE =
  'Meeting notes for the spring release. We agreed to ship the offline mode first, then the ' +
  'new sharing dialog. Ana will check the import of old files; Raj takes the search index and ' +
  'the migration script. Open question: do we keep the legacy export? Next review on Tuesday.\n';

const errors = { connect_failed: 0, conn_errors: 0, closes: 0 };
let countingErrors = true;

// Per document: clients on it, and the edits still travelling to its clients.
//   inserts.get(clientID).get(clock) / deletes.get(clientID).get(clock) -> record
// An insert is keyed by the id of the character it creates; a delete by the id
// of the character it removes. Clients only delete characters they typed
// themselves, so no two clients ever delete the same character, and a receiver
// sees each tracked edit exactly once (Yjs integrates each struct and each
// deletion once, whatever the order or duplication of messages).
const docs = [];
for (let d = 0; d < cfg.docs; d++) docs.push({ clients: [], inserts: new Map(), deletes: new Map() });
for (let i = 0; i < cfg.clients; i++) docs[i % cfg.docs].clients.push(i);

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
};

function track(map, client, clock, rec) {
  let m = map.get(client);
  if (m === undefined) {
    m = new Map();
    map.set(client, m);
  }
  m.set(clock, rec);
}

function deliver(m, clock, rec, now) {
  counts.deliveries_total++;
  if (now >= phase.winStart && now < phase.winEnd) counts.deliveries_in_window++;
  if (rec.win) {
    counts.win_observed++;
    hist.add(now - rec.t);
  }
  if (--rec.left === 0) m.delete(clock);
}

// Called after every transaction a client's Y.Doc applies from the network.
function onRemoteTransaction(doc, tr) {
  const now = performance.now();
  for (const [client, after] of tr.afterState) {
    const before = tr.beforeState.get(client) || 0;
    if (after === before) continue;
    const m = doc.inserts.get(client);
    if (m === undefined) continue;
    for (let k = before; k < after; k++) {
      const rec = m.get(k);
      if (rec !== undefined) deliver(m, k, rec, now);
    }
  }
  for (const [client, ranges] of tr.deleteSet.clients) {
    const m = doc.deletes.get(client);
    if (m === undefined) continue;
    for (const r of ranges) {
      for (let k = r.clock; k < r.clock + r.len; k++) {
        const rec = m.get(k);
        if (rec !== undefined) deliver(m, k, rec, now);
      }
    }
  }
}

let ProviderClass = null;
async function loadProvider() {
  if (cfg.server === 'yws') ProviderClass = (await import('y-websocket')).WebsocketProvider;
  else ProviderClass = (await import('@hocuspocus/provider')).HocuspocusProvider;
}

const clients = new Array(cfg.clients);

// Creates client i; calls done(ok) once, when it first synced or gave up.
function startClient(i, done) {
  const d = i % cfg.docs;
  const ydoc = new Y.Doc();
  // Unique, non-zero client ids, so ids never collide inside a document.
  ydoc.clientID = 1000000 + i;
  const text = ydoc.getText(TEXT_NAME);
  const c = {
    i,
    d,
    ydoc,
    text,
    provider: null,
    synced: false,
    cursor: null, // Y.RelativePosition of the caret, or null
    jumpTo: null, // absolute index for the next insert after a jump
    own: [], // clocks of this client's recent characters still in the text (for backspace)
    prose: Math.floor(rand() * PROSE.length),
  };
  clients[i] = c;
  ydoc.on('afterTransaction', (tr) => {
    if (!tr.local) onRemoteTransaction(docs[d], tr);
  });

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

  if (cfg.server === 'yws') {
    const p = new ProviderClass(cfg.url, DOC_NAME(d), ydoc, {
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
      name: DOC_NAME(d),
      document: ydoc,
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
  for (const c of clients) {
    if (!c) continue;
    try {
      c.provider.destroy();
    } catch {
      /* ignore */
    }
  }
}

// ---------------------------------------------------------------- editing

const JUMP_P = 0.03; // move the caret to a random place, then type there
const BACKSPACE_P = 0.1; // delete this client's last typed character

function makeEdit(c, now) {
  const doc = docs[c.d];
  const others = doc.clients.length - 1;
  const { ydoc, text } = c;
  const me = ydoc.clientID;
  const inWin = now >= phase.winStart && now < phase.winEnd;
  const r = rand();

  if (r < BACKSPACE_P && c.own.length > 0) {
    // Backspace over our own last character (only its author ever deletes it).
    const clock = c.own.pop();
    const id = Y.createID(me, clock);
    const pos = Y.createAbsolutePositionFromRelativePosition(new Y.RelativePosition(null, TEXT_NAME, id, 0), ydoc);
    if (pos !== null) {
      if (others > 0) track(doc.deletes, me, clock, { t: now, win: inWin, left: others });
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
  if (others > 0) track(doc.inserts, me, clock, { t: now, win: inWin, left: others });
  text.insert(index, ch);
  c.own.push(clock);
  if (c.own.length > 32) c.own.shift();
  // Caret right after the character just typed.
  c.cursor = new Y.RelativePosition(null, TEXT_NAME, Y.createID(me, clock), -1);
  count(inWin, others, true);
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
  return result;
}

function printText(r) {
  const lines = [];
  const kv = (k, v) => lines.push(`  ${k.padEnd(26)} ${v}`);
  lines.push(`${r.server} ${r.mode}: clients=${r.clients} docs=${r.docs}` + (r.mode === 'load' ? ` rate=${r.rate}/s window=${r.seconds}s warmup=${r.warmup}s` : ''));
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
