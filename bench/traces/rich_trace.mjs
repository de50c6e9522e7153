// Generates a rich-text editing trace, reproducibly: a sequential plain trace (automerge-paper by
// default) with formatting and block changes mixed in, and the document it must end with, marks
// and blocks included. No rich trace is published; this one is issue 25's benchmark input and,
// for one timeline, the oracle of Peritext's semantics that the engine's tests replay against.
//
//   node bench/traces/rich_trace.mjs [--in TRACE.json.gz] [--out FILE.json.gz] [--seed N] [--share F]
//
// --share is the fraction of transactions that format (default 0.05); --seed the generator's seed
// (default 1). Node.js 18 or later, no packages. The output's format: bench/traces/README.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

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

// A range of one to forty characters, ending at a word's end when one is near.
function range() {
  if (chars.length === 0) return null;
  const from = pick(chars.length);
  let to = Math.min(chars.length, from + 1 + pick(40));
  while (to < chars.length && to - from < 60 && /\w/.test(chars[to].ch)) ++to;
  return [from, to];
}

const trace = JSON.parse(gunzipSync(readFileSync(opts.in)).toString('utf8'));
if (trace.kind === 'concurrent') throw new Error('rich_trace.mjs takes a sequential trace');
const txns = [];
let links = 0, comments = 0, formats = 0;
for (const txn of trace.txns) {
  for (const [pos, del, ins] of txn.patches) {
    if (del) remove(pos, del);
    if (ins) insert(pos, ins);
  }
  txns.push(txn);
  if (rand() >= opts.share / (1 - opts.share)) continue;
  const r = range();
  if (!r) continue;
  const [from, to] = r;
  const kind = pick(10);
  const out = { time: txn.time, patches: [] };
  if (kind < 6) {
    const name = EXPANDING[pick(EXPANDING.length)];
    const value = chars[from].marks.has(name) ? null : true;  // a toggle, as an editor's button
    mark(from, to, name, value);
    out.marks = [[from, to, name, value]];
  } else if (kind === 6) {
    // Links never overlap another link: an editor replaces a link rather than nesting one.
    let clear = true;
    for (let i = from; i < to; ++i) clear = clear && !chars[i].marks.has('link');
    if (!clear) continue;
    const href = `https://example.com/${++links}`;
    mark(from, to, 'link', href);
    out.marks = [[from, to, 'link', href]];
  } else if (kind === 7) {
    const id = { id: `c${++comments}` };
    mark(from, to, `comment:${id.id}`, id);
    out.marks = [[from, to, 'comment', id]];
  } else {
    const [type, attrs] = BLOCKS[pick(BLOCKS.length)];
    setBlock(from, type, attrs);
    out.blocks = [[from, type, attrs]];
  }
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
