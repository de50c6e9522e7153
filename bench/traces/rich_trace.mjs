// Generates a rich-text editing trace, reproducibly: a plain trace (automerge-paper by default)
// with formatting and block changes mixed in. No rich trace is published; these are issue 25's
// benchmark inputs.
//
//   node bench/traces/rich_trace.mjs [--in TRACE.json.gz] [--out FILE.json.gz] [--seed N] [--share F]
//
// --share is the fraction of transactions that format (default 0.05); --seed the generator's seed
// (default 1). The output's format: bench/traces/README.md.
//
// A sequential trace (automerge-paper) gets the document it must end with, marks and blocks
// included: for one timeline, the oracle of Peritext's semantics that the engine's tests replay
// against. Node.js 18 or later, no packages.
//
// A concurrent trace (concurrent/friendsforever, concurrent/clownschool) gets formatting
// transactions made by its agents on the versions they were at, concurrent with the other
// agents' typing; its end marks are not given (no single-timeline oracle exists for concurrent
// marks: the check is that every replica converges). Each agent's view is followed with Yjs, from
// bench/peers (`npm ci` there first), for its text and, for the toggles, its marks.
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { createRequire } from 'node:module';
import { undelivered } from './causal.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const opts = { in: path.join(here, '../../../shared/traces/automerge-paper.json.gz'), out: '', seed: 1, share: 0.05 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opts) || process.argv[i + 1] === undefined) {
    console.error('usage: node rich_trace.mjs [--in TRACE.json.gz] [--out FILE.json.gz] [--seed N] [--share F]');
    process.exit(2);
  }
  opts[k] = k === 'seed' || k === 'share' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
if (!opts.out) opts.out = opts.in.replace(/(\.json)?\.gz$/, '').replace(/.*\//, '') + '-rich.json.gz';

// mulberry32: small, fast, and the same numbers on every platform.
let state = opts.seed >>> 0;
function rand() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (n) => Math.floor(rand() * n);

// Marks that grow when text is typed at their end, and those that do not (Peritext).
const EXPANDING = ['bold', 'italic', 'underline', 'strike', 'code'];
const BLOCKS = [
  ['paragraph', {}], ['heading', { level: 1 }], ['heading', { level: 2 }], ['heading', { level: 3 }],
  ['bullet', { depth: 0 }], ['bullet', { depth: 1 }], ['ordered', { depth: 0 }], ['quote', {}],
  ['code', { language: 'js' }],
];

// The document as one timeline sees it: characters with their marks, and each block's type on the
// '\n' that ends it (the last block's in `lastBlock`).
const chars = [];  // {ch, marks: Map name -> value, block: [type, attrs] | null}
let lastBlock = ['paragraph', {}];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function insert(pos, text) {
  const before = chars[pos - 1], after = chars[pos];
  const inherited = new Map();
  for (const [name, value] of before ? before.marks : []) {
    // An expanding mark covers the gap after its last character; any other mark only a gap
    // inside it (the same value on both sides; the generator never overlaps two links or one
    // comment id with itself, so that is the same mark event).
    if (EXPANDING.includes(name) || (after && same(after.marks.get(name), value))) inherited.set(name, value);
  }
  const added = [...text].map((ch) => ({ ch, marks: new Map(inherited), block: ch === '\n' ? ['paragraph', {}] : null }));
  chars.splice(pos, 0, ...added);
}

function remove(pos, n) {
  // Deleting a boundary joins two blocks: the joined one keeps the later boundary's type.
  chars.splice(pos, n);
}

function mark(from, to, name, value) {
  for (let i = from; i < to; ++i) {
    if (value === null) chars[i].marks.delete(name);
    else chars[i].marks.set(name, value);
  }
}

function setBlock(pos, type, attrs) {
  let i = pos;
  while (i < chars.length && chars[i].ch !== '\n') ++i;
  if (i < chars.length) chars[i].block = [type, attrs];
  else lastBlock = [type, attrs];
}

const trace = JSON.parse(gunzipSync(readFileSync(opts.in)).toString('utf8'));
if (trace.kind === 'concurrent') {
  concurrent(trace);
  process.exit(0);
}
const txns = [];
const counters = { links: 0, comments: 0 };
let formats = 0;
for (const txn of trace.txns) {
  for (const [pos, del, ins] of txn.patches) {
    if (del) remove(pos, del);
    if (ins) insert(pos, ins);
  }
  txns.push(txn);
  if (rand() >= opts.share / (1 - opts.share)) continue;
  const fmt = formatting(chars.length, (i) => chars[i].ch, (i, name) => chars[i].marks.has(name), counters);
  if (!fmt) continue;
  for (const [from, to, name, value] of fmt.marks ?? []) mark(from, to, name === 'comment' ? `comment:${value.id}` : name, value);
  for (const [pos, type, attrs] of fmt.blocks ?? []) setBlock(pos, type, attrs);
  const out = { time: txn.time, patches: [], ...fmt };
  ++formats;
  txns.push(out);
}

const text = chars.map((c) => c.ch).join('');
if (text !== trace.endContent) throw new Error('the plain text does not end as the trace says');
// The end state: maximal spans of equal marks, and every block's type at its boundary ('\n', or
// the text's length for the last block).
const spans = [];
const markObject = (m) => Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : 1)));
let cp = 0;
for (const c of chars) {
  const m = markObject(c.marks);
  const last = spans[spans.length - 1];
  if (last && last[1] === cp && same(last[2], m)) last[1] = cp + 1;
  else spans.push([cp, cp + 1, m]);
  ++cp;
}
const blocks = [];
cp = 0;
for (const c of chars) {
  if (c.ch === '\n') blocks.push([cp, ...c.block]);
  ++cp;
}
blocks.push([cp, ...lastBlock]);

const out = {
  startContent: '',
  endContent: text,
  endSpans: spans.filter((s) => Object.keys(s[2]).length > 0),
  endBlocks: blocks.filter((b) => b[1] !== 'paragraph'),
  source: path.basename(opts.in),
  seed: opts.seed,
  share: opts.share,
  txns,
};
writeFileSync(opts.out, gzipSync(JSON.stringify(out)));
console.log(`rich_trace: ${opts.out}: ${txns.length} transactions, ${formats} of them formatting ` +
            `(${(100 * formats / txns.length).toFixed(1)}%), ${out.endSpans.length} marked spans and ` +
            `${out.endBlocks.length} typed blocks at the end`);

// One formatting transaction on a document of `len` characters (`charAt(i)` is one, `hasMark(i,
// name)` says whether it carries mark `name`), or null to skip. Ranges are of 1-60 characters,
// ending at a word's end when one is near; a mark toggles as an editor's button does (off where
// the range's first character has it); a link never nests in another. `counters` numbers links
// and comments.
function formatting(len, charAt, hasMark, counters) {
  if (len === 0) return null;
  const from = pick(len);
  let to = Math.min(len, from + 1 + pick(40));
  while (to < len && to - from < 60 && /\w/.test(charAt(to))) ++to;
  const kind = pick(10);
  if (kind < 6) {
    const name = EXPANDING[pick(EXPANDING.length)];
    return { marks: [[from, to, name, hasMark(from, name) ? null : true]] };
  }
  if (kind === 6) {
    for (let i = from; i < to; ++i) if (hasMark(i, 'link')) return null;
    return { marks: [[from, to, 'link', `https://example.com/${++counters.links}`]] };
  }
  if (kind === 7) return { marks: [[from, to, 'comment', { id: `c${++counters.comments}` }]] };
  const [type, attrs] = BLOCKS[pick(BLOCKS.length)];
  return { blocks: [[from, type, attrs]] };
}

// The concurrent variant. After an agent's transaction, with probability share/(1-share), the
// agent formats the document as it then sees it: a new transaction whose only parent is that one,
// and which the agent's next transaction descends from (it takes the place of its parent there,
// or joins the parents), so each agent's transactions stay in one line while the other agents'
// concurrent transactions stay concurrent with the formatting.
function concurrent(trace) {
  const require = createRequire(path.join(here, '../peers/package.json'));
  let Y;
  try {
    Y = require('yjs');
  } catch {
    console.error('rich_trace: a concurrent trace needs Yjs: run `npm ci` in bench/peers first');
    process.exit(1);
  }
  const n = trace.numAgents;
  const docs = [], seen = [];
  for (let a = 0; a < n; ++a) {
    const doc = new Y.Doc();
    doc.clientID = a + 1;  // fixed ids: the same output on every run
    docs.push(doc);
    seen.push(new Uint8Array(trace.txns.length * 2));
  }
  const updates = [];  // by new index
  const out = [];
  const renumber = new Map();  // old index -> new index
  const pendingFormat = new Array(n).fill(-1);  // per agent: its formatting its next txn must follow
  const counters = { links: 0, comments: 0 };
  let formats = 0;
  const captured = (doc, fn) => {
    let u = null;
    const on = (update) => { u = u ? Y.mergeUpdates([u, update]) : update; };
    doc.on('update', on);
    doc.transact(fn);
    doc.off('update', on);
    return u ?? new Uint8Array([0, 0]);
  };
  const deliver = (a, parents) => {
    for (const x of undelivered(seen[a], parents, (i) => out[i].parents)) Y.applyUpdate(docs[a], updates[x]);
  };
  for (let i = 0; i < trace.txns.length; ++i) {
    const t = trace.txns[i];
    const a = t.agent;
    let parents = t.parents.map((p) => renumber.get(p));
    const f = pendingFormat[a];
    if (f >= 0) {
      const was = out[f].parents[0];
      parents = parents.includes(was) ? parents.map((p) => (p === was ? f : p)) : [...parents, f];
      pendingFormat[a] = -1;
    }
    deliver(a, parents);
    const text = docs[a].getText('text');
    const me = out.length;
    updates.push(captured(docs[a], () => {
      for (const [pos, del, ins] of t.patches) {
        if (del) text.delete(pos, del);
        if (ins) text.insert(pos, ins);
      }
    }));
    out.push({ agent: a, parents, time: t.time, patches: t.patches });
    seen[a][me] = 1;
    renumber.set(i, me);
    if (rand() >= opts.share / (1 - opts.share)) continue;
    const s = text.toString();
    let delta = null;
    const hasMark = (pos, name) => {
      delta ??= text.toDelta();
      let at = 0;
      for (const op of delta) {
        const len = op.insert.length;
        if (pos < at + len) return !!op.attributes?.[name];
        at += len;
      }
      return false;
    };
    const fmt = formatting(s.length, (k) => s[k], hasMark, counters);
    if (!fmt) continue;
    const fi = out.length;
    updates.push(captured(docs[a], () => {
      for (const [from, to, name, value] of fmt.marks ?? []) {
        const key = name === 'comment' ? `comment:${value.id}` : name;
        text.format(from, to - from, { [key]: value === null ? null : name === 'comment' ? true : value });
      }
    }));
    out.push({ agent: a, parents: [me], time: t.time, patches: [], ...fmt });
    seen[a][fi] = 1;
    pendingFormat[a] = fi;
    ++formats;
  }
  const children = new Array(out.length).fill(0);
  for (const t of out) for (const p of t.parents) ++children[p];
  out.forEach((t, i) => { t.numChildren = children[i]; });
  const result = {
    kind: 'concurrent',
    endContent: trace.endContent,
    numAgents: n,
    source: path.basename(opts.in),
    seed: opts.seed,
    share: opts.share,
    txns: out,
  };
  writeFileSync(opts.out, gzipSync(JSON.stringify(result)));
  console.log(`rich_trace: ${opts.out}: ${out.length} transactions by ${n} agents, ${formats} of them formatting ` +
              `(${(100 * formats / out.length).toFixed(1)}%)`);
}
