#!/usr/bin/env node
// Tandem's merge beside diamond-types' load, in one run: for each sequential trace and each
// branching history (traces/branches/*.dt), rounds in which the two take turns. diamond-types:
// Doc.fromBytes + get() on the bytes its own replay of the trace saved (a .dt file holds the
// operation log only, so loading merges the whole history). Tandem: `tandem-bench trace --json
// --no-local` (decoding the whole history, ops_since({}), and merging it into an empty replica),
// a child process on the same core. Both check the text against endContent.
//   taskset -c 1 node merge.mjs [--runs N] [--rounds R] [--tandem-bench PATH] [--trace NAME]
// Prints medians over the rounds (each round's figure is itself a median of N runs) and the
// ratio Tandem / diamond-types.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import * as diamond from './adapters/diamond-types.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const traces = process.env.TANDEM_TRACES || resolve(HERE, '..', '..', '..', 'shared', 'traces');
let runs = 7, rounds = 3, filter = '';
let bench = resolve(HERE, '..', '..', 'build', 'bench', 'tandem-bench');
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--runs') runs = Math.max(1, Number(process.argv[++i]) | 0);
  else if (a === '--rounds') rounds = Math.max(1, Number(process.argv[++i]) | 0);
  else if (a === '--tandem-bench') bench = resolve(process.argv[++i]);
  else if (a === '--trace') filter = process.argv[++i];
  else { process.stderr.write('usage: node merge.mjs [--runs N] [--rounds R] [--tandem-bench PATH] [--trace NAME]\n'); process.exit(2); }
}
if (!existsSync(bench)) { process.stderr.write(`merge.mjs: ${bench} is missing (scripts/build.sh release)\n`); process.exit(2); }

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const readTrace = (file) => JSON.parse(gunzipSync(readFileSync(file)).toString('utf8'));

// Sequential traces: diamond-types' bytes from its own replay; branching histories: their .dt file.
const cases = [];
for (const n of readdirSync(traces).filter((f) => f.endsWith('.json.gz')).sort()) {
  const file = join(traces, n);
  const t = readTrace(file);
  const txns = t.txns.map((x) => x.patches);
  const doc = diamond.replay(txns);
  if (diamond.text(doc) !== t.endContent) throw new Error(`${n}: diamond-types' replay does not reach endContent`);
  cases.push({ name: n.replace('.json.gz', ''), file, bytes: diamond.encode(doc), end: t.endContent });
  doc.free?.();
}
const branches = join(traces, 'branches');
if (existsSync(branches)) {
  for (const n of readdirSync(branches).filter((f) => f.endsWith('.dt')).sort()) {
    const name = n.slice(0, -3);
    const file = join(branches, `${name}.json.gz`);
    cases.push({ name, file, bytes: readFileSync(join(branches, n)), end: readTrace(file).endContent });
  }
}

function diamondMerge(c) {
  const times = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const doc = diamond.load(c.bytes);
    const text = diamond.text(doc);
    times.push(performance.now() - t0);
    doc.free?.();
    if (text !== c.end) throw new Error(`${c.name}: diamond-types' load does not reach endContent`);
  }
  return median(times);
}

function tandemMerge(c) {
  const out = spawnSync(bench, ['trace', '--json', '--no-local', '--runs', String(runs), c.file], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`${c.name}: tandem-bench failed: ${out.stderr}`);
  return JSON.parse(out.stdout.trim().split('\n').pop()).merge_ms;
}

const dtVersion = JSON.parse(readFileSync(join(HERE, 'node_modules', 'diamond-types-node', 'package.json'))).version;
console.log(`# node ${process.version}, diamond-types-node ${dtVersion}, ${rounds} rounds of ${runs} runs, medians; ${new Date().toISOString()}`);
console.log(`${'trace'.padEnd(22)} ${'tandem_merge_ms'.padStart(16)} ${'diamond_load_ms'.padStart(16)} ${'ratio'.padStart(7)}`);
for (const c of cases) {
  if (filter && !c.name.includes(filter)) continue;
  const t = [], d = [];
  for (let r = 0; r < rounds; r++) {
    d.push(diamondMerge(c));
    t.push(tandemMerge(c));
  }
  const tm = median(t), dm = median(d);
  console.log(`${c.name.padEnd(22)} ${tm.toFixed(2).padStart(16)} ${dm.toFixed(2).padStart(16)} ${(tm / dm).toFixed(2).padStart(7)}`);
}
