#!/usr/bin/env node
// Peer CRDT benchmark for Tandem: replays the sequential editing traces with
// Yjs, Loro, Automerge and json-joy and reports replay time, encode/load time
// and encoded size. See README.md in this folder for what exactly is measured.
//
// Every (peer, trace) pair runs in its own child Node process (started with
// --expose-gc) so that one library's heap / WASM memory cannot slow down the
// next measurement. Use --in-process to run everything in this process.

import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import os from 'node:os';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, '..', '..');
const SCRIPT = fileURLToPath(import.meta.url);

// Order used for output. Each entry: short name and adapter module.
const PEERS = ['yjs', 'loro', 'automerge', 'json-joy', 'diamond-types'];

const USAGE = `usage: node run.mjs [options]

Replays the sequential editing traces (top-level *.json.gz of the traces folder)
with each peer CRDT library and prints timing and size.

options:
  --runs N             measured runs per (peer, trace); median is reported (default 5)
  --automerge-runs N   runs for Automerge only (default: same as --runs)
  --trace NAME         only traces whose name contains NAME (repeatable, or comma-separated)
  --peer NAME          only peers whose name contains NAME (repeatable, or comma-separated);
                       peers: ${PEERS.join(', ')}
  --json               one JSON object per line per (peer, trace) instead of a table
  --in-process         do not start a child process per (peer, trace)
  --list               list the traces and peers that would run, then exit
  -h, --help           this text

environment:
  TANDEM_TRACES        traces folder (default: ../shared/traces relative to the repository root)

exit status: 0 if every peer reproduced endContent on every selected trace, 1 otherwise.`;

function die(msg) {
  process.stderr.write(`run.mjs: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    runs: 5, automergeRuns: null, traces: [], peers: [],
    json: false, inProcess: false, list: false, child: null,
  };
  const intArg = (flag, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) die(`${flag} needs a positive integer, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    let flag = a, value;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) { flag = a.slice(0, eq); value = a.slice(eq + 1); }
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) die(`${flag} needs a value`);
      return argv[++i];
    };
    const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);
    switch (flag) {
      case '--runs': opts.runs = intArg(flag, next()); break;
      case '--automerge-runs': opts.automergeRuns = intArg(flag, next()); break;
      case '--trace': opts.traces.push(...list(next())); break;
      case '--peer': opts.peers.push(...list(next())); break;
      case '--json': opts.json = true; break;
      case '--in-process': opts.inProcess = true; break;
      case '--list': opts.list = true; break;
      case '--child': opts.child = { peer: next(), file: next(), runs: intArg('--child runs', next()) }; break;
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0);
      default: die(`unknown argument ${JSON.stringify(a)}\n\n${USAGE}`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------- traces

function tracesDir() {
  return process.env.TANDEM_TRACES
    ? resolve(process.env.TANDEM_TRACES)
    : resolve(REPO_ROOT, '..', 'shared', 'traces');
}

// Sequential traces are the *.json.gz files directly in the traces folder;
// concurrent/ (multi-agent traces with a causal graph) is not replayed here.
function listTraces(dir) {
  let names;
  try {
    names = readdirSync(dir);
  } catch (e) {
    die(`cannot read traces folder ${dir} (set TANDEM_TRACES): ${e.message}`);
  }
  return names
    .filter((n) => n.endsWith('.json.gz') && statSync(join(dir, n)).isFile())
    .sort()
    .map((n) => ({ name: basename(n, '.json.gz'), file: join(dir, n) }));
}

function loadTrace(file) {
  const raw = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8'));
  if (raw.kind === 'concurrent' || !Array.isArray(raw.txns) || typeof raw.endContent !== 'string') {
    throw new Error(`${file} is not a sequential trace`);
  }
  if (raw.startContent) throw new Error(`${file}: non-empty startContent is not supported`);
  let ops = 0;
  const txns = raw.txns.map((t) => {
    ops += t.patches.length;
    return t.patches.map(([pos, del, ins]) => [pos, del, ins ?? '']);
  });
  let codePoints = 0;
  for (const _ of raw.endContent) codePoints++;
  return { txns, ops, endContent: raw.endContent, finalLen: codePoints };
}

// ---------------------------------------------------------------- measurement

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const gc = typeof globalThis.gc === 'function' ? globalThis.gc : () => {};

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return `lengths ${a.length} vs expected ${b.length}, first difference at UTF-16 index ${i}: ` +
    `got ${JSON.stringify(a.slice(i, i + 30))}, expected ${JSON.stringify(b.slice(i, i + 30))}`;
}

function versionOf(pkg) {
  try {
    return JSON.parse(readFileSync(join(HERE, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return 'not-installed';
  }
}

// Measure one peer on one trace; returns the result record.
async function measure(peerName, traceFile, runs) {
  const adapter = await import(`./adapters/${peerName}.mjs`);
  const trace = loadTrace(traceFile);
  const rec = {
    peer: peerName,
    version: versionOf(adapter.pkg),
    trace: basename(traceFile, '.json.gz'),
    ops: trace.ops,
    final_len: trace.finalLen,
    local_ms: null,
    encode_ms: null,
    load_ms: null,
    snapshot_bytes: null,
    runs,
    txns: trace.txns.length,
    ok: true,
  };
  const local = [], enc = [], load = [];
  const fail = (what, msg) => {
    rec.ok = false;
    rec.error = `${what}: ${msg}`;
  };
  try {
    for (let r = 0; r < runs && rec.ok; r++) {
      gc();
      let t0 = performance.now();
      let doc = adapter.replay(trace.txns);
      local.push(performance.now() - t0);
      const got = adapter.text(doc);
      if (got !== trace.endContent) { fail('local replay', firstDiff(got, trace.endContent)); break; }

      t0 = performance.now();
      const bytes = adapter.encode(doc);
      enc.push(performance.now() - t0);
      if (rec.snapshot_bytes === null) {
        rec.snapshot_bytes = bytes.byteLength;
        if (adapter.extraSizes) Object.assign(rec, adapter.extraSizes(doc));
      } else if (rec.snapshot_bytes !== bytes.byteLength) {
        rec.snapshot_bytes_varies = true;
      }
      doc = null;
      gc();

      // load_ms includes the first read of the full text, so lazily decoding
      // libraries are charged for materialising the document.
      t0 = performance.now();
      let loaded = adapter.load(bytes);
      const loadedText = adapter.text(loaded);
      load.push(performance.now() - t0);
      if (loadedText !== trace.endContent) { fail('load', firstDiff(loadedText, trace.endContent)); break; }
      loaded = null;
    }
  } catch (e) {
    fail('exception', e && e.stack ? e.stack.split('\n').slice(0, 4).join(' | ') : String(e));
  }
  const round = (x) => (x === null ? null : Math.round(x * 100) / 100);
  if (local.length) rec.local_ms = round(median(local));
  if (enc.length) rec.encode_ms = round(median(enc));
  if (load.length) rec.load_ms = round(median(load));
  rec.runs = local.length === runs ? runs : local.length;
  return rec;
}

// Run one (peer, trace) pair in a child process; returns the result record.
function measureInChild(peerName, trace, runs) {
  const res = spawnSync(process.execPath,
    ['--expose-gc', SCRIPT, '--child', peerName, trace.file, String(runs)],
    { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20, encoding: 'utf8' });
  const line = (res.stdout || '').trim().split('\n').filter(Boolean).pop();
  if (line) {
    try { return JSON.parse(line); } catch { /* fall through */ }
  }
  return {
    peer: peerName, version: 'unknown', trace: trace.name, ops: null, final_len: null,
    local_ms: null, encode_ms: null, load_ms: null, snapshot_bytes: null, runs: 0, ok: false,
    error: `child process failed (status ${res.status}, signal ${res.signal}${res.error ? ', ' + res.error.message : ''})`,
  };
}

// ---------------------------------------------------------------- output

function fmtNum(x, digits) {
  if (x === null || x === undefined) return '-';
  return digits === 0 ? String(Math.round(x)) : x.toFixed(digits);
}

function printTable(rows, meta) {
  const cols = [
    ['trace', (r) => r.trace, 'l'],
    ['peer', (r) => r.peer, 'l'],
    ['version', (r) => r.version, 'l'],
    ['ops', (r) => fmtNum(r.ops, 0), 'r'],
    ['final_len', (r) => fmtNum(r.final_len, 0), 'r'],
    ['local_ms', (r) => fmtNum(r.local_ms, 1), 'r'],
    ['encode_ms', (r) => fmtNum(r.encode_ms, 2), 'r'],
    ['load_ms', (r) => fmtNum(r.load_ms, 2), 'r'],
    ['snapshot_bytes', (r) => fmtNum(r.snapshot_bytes, 0), 'r'],
    ['runs', (r) => String(r.runs), 'r'],
    ['check', (r) => (r.ok ? 'ok' : 'FAIL'), 'l'],
    ['note', (r) => (r.snapshot_v2_bytes ? `V2 update ${r.snapshot_v2_bytes} B` : ''), 'l'],
  ];
  const cells = rows.map((r) => cols.map(([, f]) => f(r)));
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const pad = (s, i) => (cols[i][2] === 'r' ? s.padStart(widths[i]) : s.padEnd(widths[i]));
  const out = [];
  out.push(`# node ${process.version}, ${os.cpus().length} cpus, traces: ${meta.dir}`);
  out.push(`# times are medians in milliseconds; check = final text equals endContent (after replay and after load)`);
  out.push(cols.map(([h], i) => pad(h, i)).join('  ').trimEnd());
  out.push(widths.map((w) => '-'.repeat(w)).join('  '));
  let prev = null;
  for (let k = 0; k < rows.length; k++) {
    if (prev !== null && rows[k].trace !== prev) out.push('');
    prev = rows[k].trace;
    out.push(cells[k].map(pad).join('  ').trimEnd());
  }
  process.stdout.write(out.join('\n') + '\n');
}

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));

  if (opts.child) {
    const rec = await measure(opts.child.peer, opts.child.file, opts.child.runs);
    process.stdout.write(JSON.stringify(rec) + '\n');
    process.exit(rec.ok ? 0 : 1);
  }

  const dir = tracesDir();
  const traces = listTraces(dir).filter((t) => !opts.traces.length || opts.traces.some((f) => t.name.includes(f)));
  const peers = PEERS.filter((p) => !opts.peers.length || opts.peers.some((f) => p.includes(f)));
  if (!traces.length) die(`no trace matches in ${dir}`);
  if (!peers.length) die(`no peer matches; peers are ${PEERS.join(', ')}`);

  if (opts.list) {
    process.stdout.write(`traces folder: ${dir}\ntraces: ${traces.map((t) => t.name).join(' ')}\n` +
      `peers: ${peers.map((p) => `${p}`).join(' ')}\n`);
    return;
  }

  const rows = [];
  let failures = 0;
  for (const trace of traces) {
    for (const peer of peers) {
      const runs = peer === 'automerge' && opts.automergeRuns ? opts.automergeRuns : opts.runs;
      process.stderr.write(`[peers] ${trace.name} / ${peer} (${runs} run${runs > 1 ? 's' : ''}) ...`);
      const t0 = performance.now();
      const rec = opts.inProcess ? await measure(peer, trace.file, runs) : measureInChild(peer, trace, runs);
      process.stderr.write(` ${rec.ok ? 'ok' : 'FAIL'} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
      if (!rec.ok) {
        failures++;
        process.stderr.write(`[peers] FAIL ${peer} on ${trace.name}: ${rec.error}\n`);
      }
      rows.push(rec);
      if (opts.json) process.stdout.write(JSON.stringify(rec) + '\n');
    }
  }
  if (!opts.json) printTable(rows, { dir });
  if (failures) {
    process.stderr.write(`\n[peers] *** FAIL: ${failures} (peer, trace) pair(s) did not reproduce endContent ***\n`);
    for (const r of rows.filter((x) => !x.ok)) process.stderr.write(`[peers]   ${r.peer} / ${r.trace}: ${r.error}\n`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  process.stderr.write(`run.mjs: ${e && e.stack ? e.stack : e}\n`);
  process.exit(2);
});
