#!/usr/bin/env node
// diamond-types on the branching histories (traces/branches/*.dt, with the endContent of the
// matching .json.gz): the time to build the document from its operation log (Doc.fromBytes, then
// get()), the peer figure for `tandem-bench trace`'s merge_ms on the same trace.
//   node branches.mjs [--runs N]
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import dt from 'diamond-types-node';

const HERE = dirname(fileURLToPath(import.meta.url));
const dir = join(process.env.TANDEM_TRACES || resolve(HERE, '..', '..', '..', 'shared', 'traces'), 'branches');
let runs = 7;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--runs') runs = Math.max(1, Number(process.argv[++i]) | 0);
  else { process.stderr.write('usage: node branches.mjs [--runs N]\n'); process.exit(2); }
}
let names;
try {
  names = readdirSync(dir).filter((n) => n.endsWith('.dt')).sort();
} catch (e) {
  process.stderr.write(`branches.mjs: cannot read ${dir} (set TANDEM_TRACES): ${e.message}\n`);
  process.exit(2);
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
let ok = true;
console.log(`# node ${process.version}, diamond-types-node ${JSON.parse(readFileSync(join(HERE, 'node_modules', 'diamond-types-node', 'package.json'))).version}, ${runs} runs, medians`);
console.log('trace         fromBytes+get_ms  check');
for (const n of names) {
  const trace = n.slice(0, -3);
  const bytes = readFileSync(join(dir, n));
  const end = JSON.parse(gunzipSync(readFileSync(join(dir, `${trace}.json.gz`))).toString('utf8')).endContent;
  const times = [];
  let good = true;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const doc = dt.Doc.fromBytes(bytes, 'reader');
    const text = doc.get();
    times.push(performance.now() - t0);
    doc.free();
    if (text !== end) good = false;
  }
  ok = ok && good;
  console.log(`${trace.padEnd(13)} ${median(times).toFixed(2).padStart(16)}  ${good ? 'ok' : 'WRONG TEXT'}`);
}
process.exit(ok ? 0 : 1);
