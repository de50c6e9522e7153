#!/usr/bin/env node
// Rich text with peer CRDT libraries, for comparison with `tandem-bench trace` on the same rich
// trace (bench/traces/rich_trace.mjs): Yjs (Y.Text with formatting attributes, as Quill and
// y-quill keep rich text) and Loro (LoroText marks with Peritext's expand rules). Each replays the
// trace's text edits, marks and block changes, once with the formatting and once without it
// (the same trace stripped), in a child process of its own per (peer, variant).
//
//   node bench/peers/rich.mjs build/traces/automerge-paper-rich.json.gz [--runs 5] [--json]
//   node bench/peers/rich.mjs build/traces/friendsforever-rich.json.gz    (a concurrent one)
//
// Marks: bold, italic, underline, strike, code and links are attributes of those names, a comment
// one attribute per id ("comment:<id>"); removing is null (Yjs) or unmark (Loro). Blocks: neither
// library's text has them, so a block's type is an attribute ("block") of the `\n` that ends the
// block, as Quill's Delta keeps it; the last block, which no `\n` ends, keeps none (a few of the
// trace's block changes). Which `\n` that is, is found before the timed runs, so no run pays for
// a search Tandem's engine does inside set_block. Columns (medians):
//   local_ms   the trace's transactions applied to an empty document, one transaction each (a
//              replay over a minute is not repeated: then every column is of that one run); a
//              concurrent trace's with a replica per agent, each sent the others' updates when its
//              next transaction builds on them, and the first one sent the rest at the end, as
//              `tandem-bench trace` replays it
//   merge_ms   the whole history, as the library exports it for another replica (Yjs: the update,
//              Loro: its updates), imported into an empty document, and the text read
//   encode_ms, snapshot_bytes   a snapshot (Yjs: the state as an update; Loro: mode "snapshot")
//   load_ms    a snapshot loaded and its text read
//   spans_ms   the formatted text read after a load (toDelta)
//   heap_bytes, rss_bytes   memory added by loading the snapshot and holding the document,
//              after a full garbage collection, in a fresh process (WebAssembly memory never
//              shrinks: an earlier run would hide it): the JavaScript heap and array buffers, which
//              do not count Loro's WebAssembly memory; and the resident set, which does, but also
//              counts the heap's unused room (tens of MB more than the objects: an upper bound)
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { undelivered } from '../traces/causal.mjs';

const SCRIPT = fileURLToPath(import.meta.url);
const argv = process.argv.slice(2);
const flag = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
};
const gc = globalThis.gc ?? (() => {});
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// The trace as the peers replay it: each block change's `\n` found (its position, or -1 for the
// last block), in the document as its author saw it; stripped, without the formatting.
async function prepare(file, strip) {
  const trace = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8'));
  if (!Array.isArray(trace.txns)) throw new Error(`${file}: not a rich trace`);
  const conc = trace.kind === 'concurrent';
  const mirror = await peers.yjs();
  const txns = [];
  const keep = [];  // concurrent, stripped: a dropped formatting transaction's index -> its parent's
  const blockFor = (doc, t) => {
    if (!t.blocks?.length) return undefined;
    const s = mirror.text(doc);
    return t.blocks.map(([pos, type, attrs]) => [s.indexOf('\n', pos), `${type}${attrs && Object.keys(attrs).length ? `:${Object.values(attrs)[0]}` : ''}`]);
  };
  const plain = trace.txns.map((t) => ({ agent: t.agent ?? 0, parents: t.parents ?? [], patches: t.patches }));
  replay(mirror, plain, conc ? trace.numAgents : 1, (doc, i) => {
    const t = trace.txns[i];
    if (!strip) {
      txns.push({ agent: t.agent ?? 0, parents: t.parents ?? [], patches: t.patches, marks: t.marks, blocks: blockFor(doc, t) });
      return;
    }
    if (t.patches.length) {
      keep[i] = txns.length;
      txns.push({ agent: t.agent ?? 0, parents: (t.parents ?? []).map((p) => keep[p]), patches: t.patches });
    } else {
      keep[i] = keep[t.parents?.[0]];  // (a formatting transaction has one parent)
    }
  });
  if (conc && strip) for (const t of txns) t.parents = [...new Set(t.parents)];
  return { txns, agents: conc ? trace.numAgents : 1, endContent: trace.endContent };
}

// Replays `txns` with one replica per agent, as an application's editors would: before an
// agent's transaction, its replica receives every transaction it builds on that it has not seen
// (each as the update its author's replica emitted); at the end the first replica receives the
// rest. `before(doc, i)` sees a replica just before it makes transaction i. A sequential trace is
// one agent making every transaction.
function replay(p, txns, agents, before) {
  const docs = [];
  for (let a = 0; a < agents; ++a) docs.push(p.open(a, agents > 1));
  if (agents === 1) {
    txns.forEach((t, i) => {
      before?.(docs[0], i);
      p.edit(docs[0], t, false);
    });
    return docs[0];
  }
  const seen = docs.map(() => new Uint8Array(txns.length));
  const updates = new Array(txns.length);
  const deliver = (a, roots) => {
    for (const x of undelivered(seen[a], roots, (i) => txns[i].parents)) p.receive(docs[a], updates[x]);
  };
  txns.forEach((t, i) => {
    deliver(t.agent, t.parents);
    before?.(docs[t.agent], i);
    updates[i] = p.edit(docs[t.agent], t, true);
    seen[t.agent][i] = 1;
  });
  deliver(0, txns.map((_, i) => i));
  return docs[0];
}

const key = (name, value) => (name === 'comment' ? `comment:${value?.id ?? value}` : name);
const attr = (name, value) => (value === null ? null : name === 'comment' ? true : value);

// Each peer: open(agent, emit) a replica; edit(doc, txn, emit) makes one transaction and returns
// the update it emits (when asked: a library that nobody listens to encodes none); receive(doc,
// update); and the reads and snapshot calls of the columns.
const peers = {
  async yjs() {
    const Y = await import('yjs');
    return {
      version: JSON.parse(readFileSync(new URL('./node_modules/yjs/package.json', import.meta.url))).version,
      open(agent, emit) {
        const doc = new Y.Doc();
        doc.clientID = agent + 1;
        return doc;
      },
      edit(doc, t, emit) {
        const text = doc.getText('text');
        let update = null;
        const on = (u) => { update = u; };
        if (emit) doc.on('update', on);
        doc.transact(() => {
          for (const [pos, del, ins] of t.patches) {
            if (del) text.delete(pos, del);
            if (ins) text.insert(pos, ins);
          }
          for (const [from, to, name, value] of t.marks ?? []) text.format(from, to - from, { [key(name, value)]: attr(name, value) });
          for (const [nl, block] of t.blocks ?? []) if (nl >= 0) text.format(nl, 1, { block });
        });
        if (emit) doc.off('update', on);
        return update;
      },
      receive: (doc, u) => { if (u) Y.applyUpdate(doc, u); },
      text: (doc) => doc.getText('text').toString(),
      delta: (doc) => doc.getText('text').toDelta(),
      encode: (doc) => Y.encodeStateAsUpdate(doc),
      load(bytes) {
        const doc = new Y.Doc();
        Y.applyUpdate(doc, bytes);
        return doc;
      },
      history: (doc) => Y.encodeStateAsUpdate(doc),
      merge(bytes) {
        const doc = new Y.Doc();
        Y.applyUpdate(doc, bytes);
        return doc;
      },
    };
  },
  async loro() {
    const { LoroDoc } = await import('loro-crdt');
    const grow = { expand: 'after' };
    const config = (doc) => {
      doc.configDefaultTextStyle({ expand: 'none' });  // links, comments, blocks
      doc.configTextStyle({ bold: grow, italic: grow, underline: grow, strike: grow, code: grow, link: { expand: 'none' },
                            block: { expand: 'none' } });
    };
    const sent = new Map();  // replica -> the update its last commit emitted
    return {
      version: JSON.parse(readFileSync(new URL('./node_modules/loro-crdt/package.json', import.meta.url))).version,
      open(agent, emit) {
        const doc = new LoroDoc();
        doc.setPeerId(BigInt(agent + 1));
        config(doc);
        if (emit) doc.subscribeLocalUpdates((u) => sent.set(doc, u));  // (called inside commit)
        return doc;
      },
      edit(doc, t) {
        const text = doc.getText('text');
        sent.delete(doc);
        for (const [pos, del, ins] of t.patches) {
          if (del) text.delete(pos, del);
          if (ins) text.insert(pos, ins);
        }
        for (const [from, to, name, value] of t.marks ?? []) {
          if (value === null) text.unmark({ start: from, end: to }, key(name, value));
          else text.mark({ start: from, end: to }, key(name, value), attr(name, value));
        }
        for (const [nl, block] of t.blocks ?? []) if (nl >= 0) text.mark({ start: nl, end: nl + 1 }, 'block', block);
        doc.commit();
        return sent.get(doc);
      },
      receive: (doc, u) => { if (u) doc.import(u); },
      text: (doc) => doc.getText('text').toString(),
      delta: (doc) => doc.getText('text').toDelta(),
      encode: (doc) => doc.export({ mode: 'snapshot' }),
      load(bytes) {
        const doc = LoroDoc.fromSnapshot(bytes);
        config(doc);
        return doc;
      },
      history: (doc) => doc.export({ mode: 'update' }),
      merge(bytes) {
        const doc = new LoroDoc();
        config(doc);
        doc.import(bytes);
        return doc;
      },
    };
  },
};

const memNow = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
};

async function child(peer, file, strip, runs) {
  const trace = await prepare(file, strip);
  const p = await peers[peer]();
  const local = [], merge = [], encode = [], load = [], spans = [];
  let bytes = 0, mem = [0, 0];
  for (let r = 0; r < runs; r++) {
    gc();
    let t0 = performance.now();
    let doc = replay(p, trace.txns, trace.agents);
    local.push(performance.now() - t0);
    // A replay of minutes (Yjs with this trace's formatting) is measured once.
    if (r === 0 && local[0] > 60000) runs = 1;
    if (p.text(doc) !== trace.endContent) throw new Error(`${peer}: the replay does not end with endContent`);
    t0 = performance.now();
    const snap = p.encode(doc);
    encode.push(performance.now() - t0);
    bytes = snap.byteLength;
    const hist = p.history(doc);
    doc = null;
    gc();
    t0 = performance.now();
    let merged = p.merge(hist);
    const mt = p.text(merged);
    merge.push(performance.now() - t0);
    if (mt !== trace.endContent) throw new Error(`${peer}: the merge does not end with endContent`);
    merged = null;
    t0 = performance.now();
    let loaded = p.load(snap);
    const lt = p.text(loaded);
    load.push(performance.now() - t0);
    if (lt !== trace.endContent) throw new Error(`${peer}: the load does not end with endContent`);
    t0 = performance.now();
    p.delta(loaded);
    spans.push(performance.now() - t0);
    loaded = null;
    if (r === 0) {
      // Memory: the snapshot loaded in a fresh process.
      const file = path.join(os.tmpdir(), `tandem-rich-${process.pid}.bin`);
      writeFileSync(file, snap);
      const res = spawnSync(process.execPath, ['--expose-gc', SCRIPT, '--mem', peer, file], { encoding: 'utf8' });
      rmSync(file, { force: true });
      mem = (res.stdout || '').trim().split(' ').map(Number);
      if (res.status !== 0 || mem.length !== 2 || !mem.every(Number.isFinite)) throw new Error(`${peer}: the memory child failed: ${res.stderr}`);
    }
  }
  const r2 = (x) => Math.round(x * 100) / 100;
  return { peer, version: p.version, variant: strip ? 'stripped' : 'rich', runs: local.length, local_ms: r2(median(local)), merge_ms: r2(median(merge)),
           encode_ms: r2(median(encode)), load_ms: r2(median(load)), spans_ms: r2(median(spans)), snapshot_bytes: bytes,
           heap_bytes: mem[0], rss_bytes: mem[1] };
}

if (argv[0] === '--mem') {
  const [, peer, file] = argv;
  const p = await peers[peer]();
  const bytes = new Uint8Array(readFileSync(file));
  // Each library's code and first allocations first, with a small document of its own.
  p.load(p.encode(replay(p, [{ patches: [[0, 0, 'x']], marks: [[0, 1, 'bold', true]] }], 1)));
  const before = memNow();
  const doc = p.load(bytes);
  p.delta(doc);
  const after = memNow();
  process.stdout.write(`${after.heap - before.heap} ${after.rss - before.rss}\n`);
  if (!p.text(doc)) process.exit(1);
  process.exit(0);
}

if (argv[0] === '--child') {
  const [, peer, file, strip, runs] = argv;
  const rec = await child(peer, file, strip === '1', Number(runs));
  process.stdout.write(`${JSON.stringify(rec)}\n`);
  process.exit(0);
}

const file = argv.find((a) => !a.startsWith('--') && argv[argv.indexOf(a) - 1] !== '--runs');
if (!file) {
  console.error('usage: node bench/peers/rich.mjs RICH_TRACE.json.gz [--runs N] [--json]');
  process.exit(2);
}
const runs = Number(flag('--runs', '5'));
const rows = [];
for (const peer of Object.keys(peers)) {
  for (const strip of [false, true]) {
    const res = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', SCRIPT, '--child', peer, file, strip ? '1' : '0', String(runs)],
                          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
    const line = (res.stdout || '').trim().split('\n').pop();
    if (res.status !== 0 || !line) {
      console.error(`rich.mjs: ${peer} (${strip ? 'stripped' : 'rich'}) failed with status ${res.status}`);
      process.exit(1);
    }
    rows.push(JSON.parse(line));
  }
}
if (argv.includes('--json')) {
  for (const r of rows) console.log(JSON.stringify(r));
} else {
  const cols = ['peer', 'version', 'variant', 'runs', 'local_ms', 'merge_ms', 'encode_ms', 'load_ms', 'spans_ms', 'snapshot_bytes', 'heap_bytes', 'rss_bytes'];
  console.log(cols.join('\t'));
  for (const r of rows) console.log(cols.map((c) => r[c]).join('\t'));
}
