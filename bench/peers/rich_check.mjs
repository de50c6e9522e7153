// Checks bench/traces/rich_trace.mjs's end state with an implementation of its own: Loro
// (loro-crdt, installed here by `npm ci`), whose text marks take Peritext's expand rules per key.
// The trace is replayed into one LoroText with bold, italic, underline, strike and code growing
// after their end and links and comments growing at neither end; Loro's marked runs must equal
// the trace's `endSpans` (blocks are not compared: Loro's text has none). Today they differ where
// text is typed next to deleted characters at a mark's edge: bench/traces/README.md.
//
//   node bench/peers/rich_check.mjs build/traces/automerge-paper-rich.json.gz
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { LoroDoc } from 'loro-crdt';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/peers/rich_check.mjs RICH_TRACE.json.gz');
  process.exit(2);
}
const trace = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8'));
const doc = new LoroDoc();
doc.configDefaultTextStyle({ expand: 'none' });  // links and comments (one key per comment id)
const grow = { expand: 'after' };
doc.configTextStyle({ bold: grow, italic: grow, underline: grow, strike: grow, code: grow, link: { expand: 'none' } });
const text = doc.getText('t');
let marks = 0;
for (const txn of trace.txns) {
  for (const [pos, del, ins] of txn.patches) {
    if (del) text.delete(pos, del);
    if (ins) text.insert(pos, ins);
  }
  for (const [from, to, name, value] of txn.marks ?? []) {
    const key = name === 'comment' ? `comment:${value.id}` : name;
    if (value === null) text.unmark({ start: from, end: to }, key);
    else text.mark({ start: from, end: to }, key, value);
    ++marks;
  }
}
if (text.toString() !== trace.endContent) throw new Error('Loro ends with another text');

// Loro's delta as the trace's spans: [from, to, marks] for every run with marks, adjacent runs
// with equal marks joined. Positions: the traces' text has no character past U+FFFF, so UTF-16
// lengths are code points.
const spans = [];
let at = 0;
const canon = (o) => JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1))));
for (const op of text.toDelta()) {
  const n = op.insert.length;
  const attrs = op.attributes ?? {};
  if (Object.keys(attrs).length) {
    const last = spans[spans.length - 1];
    if (last && last[1] === at && canon(last[2]) === canon(attrs)) last[1] = at + n;
    else spans.push([at, at + n, attrs]);
  }
  at += n;
}
const want = trace.endSpans;
let first = -1;
for (let i = 0; i < Math.max(spans.length, want.length) && first < 0; ++i) {
  const a = spans[i], b = want[i];
  if (!a || !b || a[0] !== b[0] || a[1] !== b[1] || canon(a[2]) !== canon(b[2])) first = i;
}
if (first >= 0) {
  console.error(`rich_check: FAIL at span ${first}: Loro ${JSON.stringify(spans[first])}, the trace ${JSON.stringify(want[first])}`);
  process.exit(1);
}
console.log(`rich_check: Loro agrees with ${file}: ${trace.txns.length} transactions, ` +
            `${marks} mark changes, ${spans.length} marked spans`);
