// @tandem/client/prosemirror: binds one ProseMirror EditorView to one Tandem document.
//   const state = EditorState.create({ doc: docFromHandle(handle), plugins: [tandemPlugin(handle), ...] });
//   const view = new EditorView(parent, { state });
//
// The document is flat, as the engine is (crdt/format.h): one textblock per block, no nesting. A
// block is a paragraph, heading {level 1-6}, bullet_item or ordered_item {depth 0-7}, blockquote
// or code_block {language}; text carries the marks bold, italic, underline, strike, code, link
// {href} and comment {id} (comments overlap). `schema` is that schema; an app may build its own
// with the same node and mark names and attributes.
//
// Local edits of any kind (typing, commands, input rules, paste, undo) go to the document as the
// difference between the editor's document before and after; remote ones come into the editor
// outside its undo history, so undo takes back only one's own edits. Whatever the engine made of
// an edit is what the editor then shows: a link the engine refuses (a script URL) disappears.
// Other people's carets and selections are drawn with name labels, as in the CodeMirror binding.
import { Mark, Schema } from 'prosemirror-model';
import { Plugin, PluginKey } from 'prosemirror-state';
import { Decoration, DecorationSet } from 'prosemirror-view';
import { colorFor, isColor } from './color.js';

const MAX_DEPTH = 7;
const LABEL_MS = 2500;

// ---- the schema -----------------------------------------------------------------------------------

const depthOf = (dom) => {
  let d = 0;
  for (let e = dom.parentElement; e; e = e.parentElement) if (e.tagName === 'UL' || e.tagName === 'OL') d++;
  return Math.min(Math.max(d - 1, 0), MAX_DEPTH);
};
const depthAttr = (dom) => Math.min(Math.max(Number(dom.getAttribute('data-depth')) || 0, 0), MAX_DEPTH);
const item = (kind, listTag) => ({
  group: 'block', content: 'inline*', defining: true, attrs: { depth: { default: 0 } },
  parseDOM: [{ tag: `p.tandem-${kind}`, getAttrs: (dom) => ({ depth: depthAttr(dom) }) },
             { tag: `${listTag} > li`, getAttrs: (dom) => ({ depth: depthOf(dom) }) }],
  toDOM: (n) => ['p', { class: `tandem-${kind}`, 'data-depth': String(n.attrs.depth) }, 0],
});

export const schema = new Schema({
  nodes: {
    doc: { content: 'block+' },
    paragraph: { group: 'block', content: 'inline*', parseDOM: [{ tag: 'p' }], toDOM: () => ['p', 0] },
    heading: {
      group: 'block', content: 'inline*', defining: true, attrs: { level: { default: 1 } },
      parseDOM: [1, 2, 3, 4, 5, 6].map((level) => ({ tag: `h${level}`, attrs: { level } })),
      toDOM: (n) => [`h${n.attrs.level}`, 0],
    },
    bullet_item: item('bullet', 'ul'),
    ordered_item: item('ordered', 'ol'),
    blockquote: { group: 'block', content: 'inline*', defining: true, parseDOM: [{ tag: 'blockquote' }], toDOM: () => ['blockquote', 0] },
    code_block: {
      group: 'block', content: 'text*', marks: '', code: true, defining: true, attrs: { language: { default: '' } },
      parseDOM: [{ tag: 'pre', preserveWhitespace: 'full', getAttrs: (dom) => ({ language: dom.getAttribute('data-language') || '' }) }],
      toDOM: (n) => ['pre', n.attrs.language ? { 'data-language': n.attrs.language } : {}, ['code', 0]],
    },
    text: { group: 'inline' },
  },
  marks: {
    link: {
      attrs: { href: {} }, inclusive: false,
      parseDOM: [{ tag: 'a[href]', getAttrs: (dom) => ({ href: dom.getAttribute('href') }) }],
      toDOM: (m) => ['a', { href: m.attrs.href, rel: 'noopener noreferrer nofollow' }, 0],
    },
    bold: {
      parseDOM: [{ tag: 'strong' }, { tag: 'b', getAttrs: (dom) => dom.style.fontWeight !== 'normal' && null },
                 { style: 'font-weight', getAttrs: (v) => /^(bold(er)?|[6-9]\d\d)$/.test(v) && null }],
      toDOM: () => ['strong', 0],
    },
    italic: { parseDOM: [{ tag: 'em' }, { tag: 'i' }, { style: 'font-style=italic' }], toDOM: () => ['em', 0] },
    underline: { parseDOM: [{ tag: 'u' }, { style: 'text-decoration=underline' }], toDOM: () => ['u', 0] },
    strike: { parseDOM: [{ tag: 's' }, { tag: 'del' }, { tag: 'strike' }], toDOM: () => ['s', 0] },
    code: { parseDOM: [{ tag: 'code' }], toDOM: () => ['code', 0] },
    comment: {
      attrs: { id: {} }, inclusive: false, excludes: '',
      parseDOM: [{ tag: 'span[data-comment]', getAttrs: (dom) => ({ id: dom.getAttribute('data-comment') }) }],
      toDOM: (m) => ['span', { class: 'tandem-comment', 'data-comment': m.attrs.id }, 0],
    },
  },
});

// Node names <-> the engine's block types, and each type's one attribute.
const BLOCK_OF = { paragraph: 'paragraph', heading: 'heading', bullet_item: 'bullet', ordered_item: 'ordered',
                   blockquote: 'quote', code_block: 'code' };
const NODE_OF = Object.fromEntries(Object.entries(BLOCK_OF).map(([n, b]) => [b, n]));
const ATTR_OF = { heading: 'level', bullet: 'depth', ordered: 'depth', code: 'language' };
const MARKS = ['bold', 'italic', 'underline', 'strike', 'code', 'link'];

function blockOf(node) {
  const type = BLOCK_OF[node.type.name] ?? 'paragraph';
  const attr = ATTR_OF[type];
  return { type, attrs: attr ? { [attr]: node.attrs[attr] } : {} };
}
function sameBlock(a, b) {
  const attr = ATTR_OF[a.type];
  return a.type === b.type && (!attr || String(a.attrs[attr]) === String(b.attrs[attr]));
}

// The editor's marks of a text node as the engine names them: {bold: true, link: href, comment: [ids]}.
function marksOfNode(marks) {
  const out = {};
  for (const m of marks) {
    const name = m.type.name;
    if (name === 'comment') (out.comment ??= []).push(String(m.attrs.id));
    else if (name === 'link') out.link = String(m.attrs.href);
    else if (MARKS.includes(name)) out[name] = true;
  }
  return out;
}
function pmMarks(s, marks, type) {
  let set = Mark.none;
  const add = (name, attrs) => {
    const mt = s.marks[name];
    if (mt && type.allowsMarkType(mt)) set = mt.create(attrs).addToSet(set);
  };
  for (const [name, value] of Object.entries(marks)) {
    if (name === 'comment') for (const id of value) add('comment', { id });
    else if (name === 'link') add('link', { href: value });
    else add(name);
  }
  return set;
}

// The editor document for the engine's text, blocks and spans (UTF-16 offsets, as the handle reads).
function buildDoc(s, text, blocks, spans) {
  const children = [];
  let k = 0;
  for (let i = 0; i < blocks.length; i++) {
    const from = blocks[i].at;
    const to = i + 1 < blocks.length ? blocks[i + 1].at - 1 : text.length;
    const type = s.nodes[NODE_OF[blocks[i].type]] ?? s.nodes.paragraph;
    const attr = ATTR_OF[blocks[i].type];
    const attrs = attr ? { [attr]: blocks[i].attrs[attr] } : null;
    const inline = [];
    let pos = from;
    while (pos < to) {
      while (k < spans.length && spans[k].to <= pos) k++;
      const sp = k < spans.length && spans[k].from < to ? spans[k] : null;
      const end = !sp ? to : sp.from > pos ? sp.from : Math.min(sp.to, to);
      const marks = sp && sp.from <= pos ? pmMarks(s, sp.marks, type) : Mark.none;
      inline.push(s.text(text.slice(pos, end), marks));
      pos = end;
    }
    children.push(type.create(attrs, inline));
  }
  return s.node('doc', null, children);
}

// The editor document of a handle's current state (create the EditorState with it).
export function docFromHandle(handle, s = schema) {
  return buildDoc(s, handle.text(), handle.blocks(), handle.spans());
}

// The editor document of content read as the handle reads its own, {text, blocks, spans} (UTF-16):
// a past version (doc.history.contentAt).
export function docFromContent({ text, blocks, spans }, s = schema) {
  return buildDoc(s, text, blocks, spans);
}

// Makes the editor show `target` (a document of its schema) as one transaction of the least that
// differs, so that it is one step of the undo history and what stays the same keeps its
// characters: a restore. False when nothing differs.
export function replaceWithDoc(view, target) {
  const { doc } = view.state;
  const start = doc.content.findDiffStart(target.content);
  if (start === null || start === undefined) return false;
  let { a: endA, b: endB } = doc.content.findDiffEnd(target.content);
  const overlap = start - Math.min(endA, endB);
  if (overlap > 0) {
    endA += overlap;
    endB += overlap;
  }
  view.dispatch(view.state.tr.replace(start, endA, target.slice(start, endB)).scrollIntoView());
  return true;
}

// ---- positions -------------------------------------------------------------------------------------

// Each block is one textblock, and each `\n` of the text one block boundary, so a text offset t in
// block i is the editor position t + i + 1. posAt: the editor position of a text offset (UTF-16,
// as the handle counts); offsetAt: the text offset of an editor position.
export { toPos as posAt, toOffset as offsetAt };
function toPos(doc, t) {
  let off = 0;
  let pos = 0;
  for (let i = 0; i < doc.childCount; i++) {
    const size = doc.child(i).content.size;
    if (t <= off + size || i === doc.childCount - 1) return pos + 1 + Math.max(0, Math.min(t - off, size));
    off += size + 1;
    pos += size + 2;
  }
  return 0;
}
function toOffset(doc, pos) {
  const $p = doc.resolve(Math.max(0, Math.min(pos, doc.content.size)));
  const i = $p.index(0);
  return $p.depth === 0 ? Math.max(0, pos - i) : pos - i - 1;
}

// The text offset where block `index` begins.
function offsetOfBlock(frag, index) {
  let t = 0;
  for (let i = 0; i < index; i++) t += frag.child(i).content.size + 1;
  return t;
}

// The top-level blocks that differ: [start, endA) of a became [start, endB) of b, never both
// empty. Unchanged blocks are the same objects in both (ProseMirror shares them).
function changedBlocks(a, b) {
  let start = 0;
  while (start < a.childCount && start < b.childCount && a.child(start) === b.child(start)) start++;
  let endA = a.childCount;
  let endB = b.childCount;
  while (endA > start && endB > start && a.child(endA - 1) === b.child(endB - 1)) {
    endA--;
    endB--;
  }
  if (start === endA && start === endB) return null;
  if (start === endA || start === endB) {
    // A whole block came or went: take in a neighbour, so that its `\n` is part of the change.
    if (start > 0) start--;
    else {
      endA++;
      endB++;
    }
  }
  return { start, endA, endB };
}

function regionText(frag, from, to) {
  let s = '';
  for (let i = from; i < to; i++) s += (i > from ? '\n' : '') + frag.child(i).textContent;
  return s;
}

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

// ---- the plugin ------------------------------------------------------------------------------------

export const tandemKey = new PluginKey('tandem');

class Binding {
  constructor(view, handle) {
    this.view = view;
    this.handle = handle;
    this.applying = false;
    this.fadeTimer = null;
    this.off = [handle.on('change', () => this.pull()), handle.on('presence', () => this.showCursors())];
    queueMicrotask(() => {
      if (this.off === null) return;
      this.pull();
      this.sendSelection();
    });
  }

  update(view, prev) {
    if (this.applying) return;
    const docChanged = prev.doc !== view.state.doc;
    if (docChanged && !this.push(prev.doc, view.state.doc)) queueMicrotask(() => this.off && this.pull());
    if (docChanged || !prev.selection.eq(view.state.selection)) this.sendSelection();
  }

  // A local edit into the document. Returns false when the editor and the document may now differ
  // (the engine refused part of it, or it read differently): the caller then shows the document's.
  push(a, b) {
    const h = this.handle;
    const region = changedBlocks(a, b);
    if (!region) return true;
    const { start, endA, endB } = region;
    try {
      const at = offsetOfBlock(a, start);
      const A = regionText(a, start, endA);
      const B = regionText(b, start, endB);
      const max = Math.min(A.length, B.length);
      let p = 0;
      while (p < max && A.charCodeAt(p) === B.charCodeAt(p)) p++;
      if (p > 0 && isHigh(A.charCodeAt(p - 1))) p--;
      let s = 0;
      while (s < max - p && A.charCodeAt(A.length - 1 - s) === B.charCodeAt(B.length - 1 - s)) s++;
      if (s > 0 && isLow(A.charCodeAt(A.length - s))) s--;
      if (A.length - p - s > 0) h.delete(at + p, A.length - p - s);
      if (B.length - p - s > 0) h.insert(at + p, B.slice(p, B.length - s));
      return this.reconcile(b, start, endB, at);
    } catch (e) {
      console.warn('tandem: a local edit was not taken whole; the editor shows the document as it is', e);
      return false;
    }
  }

  // Makes blocks [start, end) of the editor's document `doc` (beginning at text offset `at`) have
  // the same types and marks in the engine: the engine gave typed text the marks of its rules, and a
  // `\n` begins a paragraph until told otherwise.
  reconcile(doc, start, end, at) {
    const h = this.handle;
    let plain = !h.rich;
    for (let i = start; i < end && plain; i++) {
      const n = doc.child(i);
      if (n.type.name !== 'paragraph') plain = false;
      n.forEach((c) => { if (c.marks.length) plain = false; });
    }
    if (plain) return true;  // a document without formatting, and none added
    const blocks = h.blocks();
    const spans = h.spans();
    if (blocks.length !== doc.childCount) return false;
    let t = at;
    let k = 0;
    for (let i = start; i < end; i++) {
      const node = doc.child(i);
      if (blocks[i].at !== t) return false;
      const want = blockOf(node);
      if (!sameBlock(want, blocks[i])) h.setBlock(t, want.type, want.attrs);
      const len = node.content.size;
      if (node.type.spec.marks !== '' && len > 0) {
        while (k < spans.length && spans[k].to <= t) k++;
        this.reconcileMarks(node, t, spans, k);
      }
      t += len + 1;
    }
    return true;
  }

  reconcileMarks(node, at, spans, k) {
    const len = node.content.size;
    // Intervals where neither side's marks change: the editor's text nodes cut by the engine's spans.
    const cuts = new Set([0, len]);
    const want = [];
    node.forEach((child, offset) => {
      cuts.add(offset);
      want.push({ from: offset, to: offset + child.nodeSize, marks: marksOfNode(child.marks) });
    });
    const have = [];
    for (let j = k; j < spans.length && spans[j].from < at + len; j++) {
      const from = Math.max(spans[j].from - at, 0);
      const to = Math.min(spans[j].to - at, len);
      cuts.add(from);
      cuts.add(to);
      have.push({ from, to, marks: spans[j].marks });
    }
    const points = [...cuts].sort((x, y) => x - y);
    const at_ = (list, x) => list.find((r) => r.from <= x && x < r.to)?.marks ?? {};
    // Per mark (and per comment id), runs where the editor wants another value than the engine has.
    const runs = new Map();
    const note = (key, from, to, op) => {
      const r = runs.get(key);
      if (r && r.to === from && r.op === op) r.to = to;
      else {
        if (r) this.applyRun(at, r);
        runs.set(key, { from, to, op });
      }
    };
    const flushKey = (key) => {
      const r = runs.get(key);
      if (r) this.applyRun(at, r);
      runs.delete(key);
    };
    for (let i = 0; i + 1 < points.length; i++) {
      const from = points[i];
      const to = points[i + 1];
      if (from >= to) continue;
      const w = at_(want, from);
      const hv = at_(have, from);
      for (const name of MARKS) {
        const wv = w[name] ?? null;
        const hvv = hv[name] ?? null;
        if (wv === hvv) flushKey(name);
        else note(name, from, to, wv === null ? { remove: name, value: '' } : { set: name, value: wv });
      }
      const ids = new Set([...(w.comment ?? []), ...(hv.comment ?? [])]);
      for (const key of runs.keys()) if (key.startsWith('comment:')) ids.add(key.slice(8));
      for (const id of ids) {
        const a = (w.comment ?? []).includes(id);
        const b = (hv.comment ?? []).includes(id);
        if (a === b) flushKey(`comment:${id}`);
        else note(`comment:${id}`, from, to, a ? { set: 'comment', value: id } : { remove: 'comment', value: id });
      }
    }
    for (const key of [...runs.keys()]) flushKey(key);
  }

  applyRun(at, r) {
    const from = at + r.from;
    const to = at + r.to;
    if (r.op.set) this.handle.format(from, to, r.op.set, r.op.value);
    else this.handle.unformat(from, to, r.op.remove, r.op.remove === 'comment' ? r.op.value : '');
  }

  // The document's state into the editor, as one step over what differs.
  pull() {
    const view = this.view;
    const state = view.state;
    const next = docFromHandle(this.handle, state.schema);
    const a = state.doc.content;
    const b = next.content;
    const start = a.findDiffStart(b);
    if (start !== null) {
      let { a: endA, b: endB } = a.findDiffEnd(b);
      const overlap = start - Math.min(endA, endB);
      if (overlap > 0) {
        endA += overlap;
        endB += overlap;
      }
      let tr = state.tr.replace(start, endA, next.slice(start, endB));
      if (!tr.doc.eq(next)) tr = state.tr.replaceWith(0, state.doc.content.size, next.content);
      tr.setMeta(tandemKey, { remote: true }).setMeta('addToHistory', false);
      this.applying = true;
      try {
        view.dispatch(tr);
      } finally {
        this.applying = false;
      }
    }
    this.showCursors();
  }

  sendSelection() {
    const { doc, selection } = this.view.state;
    this.handle.setPresence({ anchor: toOffset(doc, selection.anchor), head: toOffset(doc, selection.head) });
  }

  showCursors() {
    if (this.off === null) return;
    const now = Date.now();
    const doc = this.view.state.doc;
    const decos = [];
    let fresh = false;
    for (const p of this.handle.peers()) {
      if (p.head === null) continue;
      const color = isColor(p.color) ? p.color : colorFor(p.session);
      const head = toPos(doc, p.head);
      const anchor = toPos(doc, p.anchor ?? p.head);
      const from = Math.min(head, anchor);
      const to = Math.max(head, anchor);
      if (from < to) {
        decos.push(Decoration.inline(from, to, { class: 'tandem-selection', style: `background-color: ${color}40` }));
      }
      const isFresh = now - (p.movedAt ?? 0) < LABEL_MS;
      fresh ||= isFresh;
      const first = doc.resolve(head).index(0) === 0;
      decos.push(Decoration.widget(head, () => caret(p.name, color, first, isFresh),
                                   { side: 1, key: `${p.session}:${p.name}:${color}:${first}:${isFresh}`, ignoreSelection: true }));
    }
    const set = DecorationSet.create(doc, decos);
    this.applying = true;
    try {
      this.view.dispatch(this.view.state.tr.setMeta(tandemKey, { cursors: set }).setMeta('addToHistory', false));
    } finally {
      this.applying = false;
    }
    clearTimeout(this.fadeTimer);
    if (fresh) this.fadeTimer = setTimeout(() => this.showCursors(), LABEL_MS);
  }

  destroy() {
    for (const off of this.off) off();
    this.off = null;
    clearTimeout(this.fadeTimer);
  }
}

function caret(name, color, below, fresh) {
  const el = document.createElement('span');
  el.className = `tandem-caret${below ? ' tandem-caret-top' : ''}${fresh ? ' tandem-fresh' : ''}`;
  el.style.borderColor = color;
  const label = document.createElement('span');
  label.className = 'tandem-label';
  label.dataset.testid = 'remote-cursor';
  label.style.backgroundColor = color;
  label.textContent = name;
  el.append(label);
  return el;
}

// Text with a `\n` (a paste into a code block) becomes one block per line, as the engine has it.
function splitLines(trs, oldState, newState) {
  if (!trs.some((tr) => tr.docChanged) || trs.some((tr) => tr.getMeta(tandemKey)?.remote)) return null;
  const region = changedBlocks(oldState.doc, newState.doc);
  if (!region) return null;
  const cuts = [];
  let pos = 0;
  for (let i = 0; i < region.endB; i++) {
    const node = newState.doc.child(i);
    if (i >= region.start) {
      const text = node.textContent;
      for (let j = text.indexOf('\n'); j >= 0; j = text.indexOf('\n', j + 1)) cuts.push(pos + 1 + j);
    }
    pos += node.nodeSize;
  }
  if (!cuts.length) return null;
  const tr = newState.tr;
  for (const at of cuts.reverse()) tr.delete(at, at + 1).split(at);
  return tr;
}

// The binding: sync with `handle` (a TandemDocument from openDocument) and draw other people's
// cursors. Create the state with `doc: docFromHandle(handle)`; if the editor's document differs,
// the handle's replaces it.
export function tandemPlugin(handle) {
  injectStyle();
  return new Plugin({
    key: tandemKey,
    state: {
      init: () => DecorationSet.empty,
      apply(tr, deco) {
        const meta = tr.getMeta(tandemKey);
        return meta?.cursors ?? deco.map(tr.mapping, tr.doc);
      },
    },
    props: { decorations: (state) => tandemKey.getState(state) },
    appendTransaction: splitLines,
    view: (view) => new Binding(view, handle),
  });
}

// ---- commands for the flat blocks -----------------------------------------------------------------

function blocksInSelection(state) {
  const { from, to } = state.selection;
  const out = [];
  state.doc.nodesBetween(from, to, (node, pos) => {
    if (node.isTextblock) out.push({ node, pos });
    return !node.isTextblock;
  });
  return out;
}

// Every block in the selection becomes `type` (a node name of the schema) with `attrs`.
export function setBlockType(typeName, attrs = {}) {
  return (state, dispatch) => {
    const type = state.schema.nodes[typeName];
    if (!type) return false;
    const list = blocksInSelection(state);
    if (!list.length) return false;
    if (dispatch) {
      const tr = state.tr;
      for (const { node, pos } of list) {
        if (node.type === type && Object.entries(attrs).every(([k, v]) => node.attrs[k] === v)) continue;
        if (type.spec.marks === '') tr.removeMark(pos + 1, pos + 1 + node.content.size);
        tr.setNodeMarkup(pos, type, { ...attrs });
      }
      dispatch(tr.scrollIntoView());
    }
    return true;
  };
}

// List items in the selection one level deeper (+1) or shallower (-1); false outside lists.
export function indent(delta) {
  return (state, dispatch) => {
    const list = blocksInSelection(state).filter(({ node }) => node.type.name === 'bullet_item' || node.type.name === 'ordered_item');
    if (!list.length) return false;
    if (dispatch) {
      const tr = state.tr;
      for (const { node, pos } of list) {
        const depth = Math.max(0, Math.min(MAX_DEPTH, node.attrs.depth + delta));
        if (depth !== node.attrs.depth) tr.setNodeMarkup(pos, null, { ...node.attrs, depth });
      }
      dispatch(tr);
    }
    return true;
  };
}

// Enter in a list item, quote or code block: a new block of the same kind; in an empty list item
// or quote, the block becomes a paragraph (an empty nested item goes up a level first). Elsewhere
// it returns false (ProseMirror's splitBlock: a heading's end gives a paragraph).
export function splitKeepingType(state, dispatch) {
  const { $from, $to } = state.selection;
  if ($from.depth !== 1 || !$from.sameParent($to)) return false;
  const node = $from.parent;
  const name = node.type.name;
  if (!['bullet_item', 'ordered_item', 'blockquote', 'code_block'].includes(name)) return false;
  if (node.content.size === 0 && name !== 'code_block') {
    if (node.attrs.depth > 0) return indent(-1)(state, dispatch);
    return setBlockType('paragraph')(state, dispatch);
  }
  if (dispatch) {
    const tr = state.tr.deleteSelection();
    tr.split(tr.mapping.map($from.pos), 1, [{ type: node.type, attrs: node.attrs }]);
    dispatch(tr.scrollIntoView());
  }
  return true;
}

// Backspace at the start of a list item or quote: it goes up a level, then becomes a paragraph.
export function liftAtStart(state, dispatch) {
  const { $cursor } = state.selection;
  if (!$cursor || $cursor.depth !== 1 || $cursor.parentOffset > 0) return false;
  const node = $cursor.parent;
  if (node.type.name === 'bullet_item' || node.type.name === 'ordered_item') {
    if (node.attrs.depth > 0) return indent(-1)(state, dispatch);
    return setBlockType('paragraph')(state, dispatch);
  }
  if (node.type.name === 'blockquote') return setBlockType('paragraph')(state, dispatch);
  return false;
}

// Sets the selection's link to `href` (empty: removes it). Throws nothing: an href the engine
// refuses comes back out of the editor at once.
export function setLink(href) {
  return (state, dispatch) => {
    const type = state.schema.marks.link;
    let { from, to, empty, $from } = state.selection;
    if (empty) {
      // The link around the cursor.
      const range = markRange($from, type);
      if (!range) return false;
      ({ from, to } = range);
    }
    if (dispatch) {
      const tr = state.tr.removeMark(from, to, type);
      if (href) tr.addMark(from, to, type.create({ href }));
      dispatch(tr.scrollIntoView());
    }
    return true;
  };
}

// The stretch of the cursor's block carrying the same `type` mark as the text at the cursor:
// {from, to, mark}, or null.
export function markRange($pos, type) {
  const start = $pos.start();
  const kids = [];
  $pos.parent.forEach((c, off) => kids.push({ from: start + off, to: start + off + c.nodeSize, mark: type.isInSet(c.marks) }));
  const i = kids.findIndex((k) => k.mark && k.from <= $pos.pos && $pos.pos <= k.to);
  if (i < 0) return null;
  const { mark } = kids[i];
  let a = i;
  let b = i;
  while (a > 0 && kids[a - 1].mark?.eq(mark)) a--;
  while (b + 1 < kids.length && kids[b + 1].mark?.eq(mark)) b++;
  return { from: kids[a].from, to: kids[b].to, mark };
}

// ---- look -------------------------------------------------------------------------------------------

// The binding's classes; an app may override them. Lists are drawn from their depth, as the
// document is flat.
export const css = `
.ProseMirror { white-space: pre-wrap; word-wrap: break-word; outline: none; }
.ProseMirror p.tandem-bullet, .ProseMirror p.tandem-ordered { position: relative; margin-top: .15em; margin-bottom: .15em; }
.ProseMirror p.tandem-bullet::before { content: '•'; position: absolute; left: -1.1em; }
${[0, 1, 2, 3, 4, 5, 6, 7].map((d) => `.ProseMirror p[data-depth="${d}"] { margin-left: ${1.6 + 1.6 * d}em; }
.ProseMirror p.tandem-ordered[data-depth="${d}"] { counter-increment: tandem-ol-${d}; counter-reset: ${[1, 2, 3, 4, 5, 6, 7].filter((x) => x > d).map((x) => `tandem-ol-${x}`).join(' ') || 'none'}; }
.ProseMirror p.tandem-ordered[data-depth="${d}"]::before { content: counter(tandem-ol-${d}) '.'; }`).join('\n')}
.ProseMirror p.tandem-ordered::before { position: absolute; left: -1.9em; min-width: 1.6em; text-align: right; }
.ProseMirror > :not(.tandem-ordered) { counter-reset: ${[0, 1, 2, 3, 4, 5, 6, 7].map((x) => `tandem-ol-${x}`).join(' ')}; }
.ProseMirror blockquote { margin: 0 0 0 .2em; padding: .1em 0 .1em .9em; border-left: 3px solid #c8ced8; color: #4a5466; }
.ProseMirror pre { margin: 0; padding: 0 .6em; background: #f3f5f8; font-family: ui-monospace, monospace; font-size: .92em; }
.ProseMirror :not(pre) + pre { padding-top: .4em; margin-top: .4em; }
.ProseMirror pre:not(:has(+ pre)) { padding-bottom: .4em; margin-bottom: .4em; }
.ProseMirror code { font-family: ui-monospace, monospace; font-size: .92em; background: #f3f5f8; padding: 0 .15em; border-radius: 3px; }
.ProseMirror pre code { background: none; padding: 0; }
.ProseMirror .tandem-comment { background: #fff3bf; border-bottom: 2px solid #f0c000; }
.tandem-caret { position: relative; border-left: 2px solid; margin-left: -1px; margin-right: -1px; pointer-events: none; }
.tandem-caret::before { content: ''; position: absolute; top: 0; bottom: 0; left: -4px; right: -4px; pointer-events: auto; }
.tandem-label { position: absolute; top: -1.35em; left: -2px; font: 11px/1.3 system-ui, sans-serif; color: #fff; padding: 0 4px;
  border-radius: 3px 3px 3px 0; white-space: nowrap; pointer-events: none; user-select: none; z-index: 5; opacity: 0; transition: opacity .4s; }
.tandem-fresh .tandem-label, .tandem-caret:hover .tandem-label { opacity: 1; transition: opacity .1s; }
.tandem-caret-top .tandem-label { top: 1.25em; border-radius: 0 3px 3px 3px; }
`;

function injectStyle() {
  const d = globalThis.document;
  if (!d?.head || d.getElementById('tandem-prosemirror-style')) return;
  const style = d.createElement('style');
  style.id = 'tandem-prosemirror-style';
  style.textContent = css;
  d.head.prepend(style);  // first, so that an app's own stylesheet wins
}

