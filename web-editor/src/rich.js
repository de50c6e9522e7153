// The rich-text editor: ProseMirror bound to the document through @tandem/client/prosemirror, with
// a toolbar, the usual shortcuts, Markdown-style input rules and a small link editor.
import { EditorState, TextSelection } from 'prosemirror-state';
import { EditorView } from 'prosemirror-view';
import { keymap } from 'prosemirror-keymap';
import { baseKeymap, chainCommands, toggleMark } from 'prosemirror-commands';
import { history, redo, undo } from 'prosemirror-history';
import { InputRule, inputRules, textblockTypeInputRule, undoInputRule } from 'prosemirror-inputrules';
import { docFromHandle, indent, liftAtStart, markRange, posAt, schema, setBlockType, setLink, splitKeepingType, tandemPlugin }
  from '@tandem/client/prosemirror';
import { el } from './dom.js';

// What the engine takes as a link (crdt/src/format.cc, check_href): no control characters, no
// leading space, and a scheme of http, https, mailto, tel or ftp, or none (a relative address).
export function goodHref(href) {
  if (!href || href.length > 2048 || /[\u0000-\u001f\u007f]/.test(href) || href[0] === ' ') return false;
  const colon = href.indexOf(':');
  const stop = href.search(/[/?#]/);
  if (colon < 0 || (stop >= 0 && stop < colon)) return true;
  return ['http', 'https', 'mailto', 'tel', 'ftp'].includes(href.slice(0, colon).toLowerCase());
}

const BLOCKS = [
  ['paragraph', 'Text', 'paragraph', {}],
  ...[1, 2, 3, 4, 5, 6].map((l) => [`h${l}`, `Heading ${l}`, 'heading', { level: l }]),
  ['bullet', 'Bullet list', 'bullet_item', { depth: 0 }],
  ['ordered', 'Numbered list', 'ordered_item', { depth: 0 }],
  ['quote', 'Quote', 'blockquote', {}],
  ['code', 'Code', 'code_block', { language: '' }],
];
const MARK_BUTTONS = [
  ['bold', 'B', 'Bold (Ctrl+B)'], ['italic', 'I', 'Italic (Ctrl+I)'], ['underline', 'U', 'Underline (Ctrl+U)'],
  ['strike', 'S', 'Strikethrough (Ctrl+Shift+X)'], ['code', '</>', 'Code (Ctrl+E)'],
];

// A list item keeps its depth when it changes kind; other blocks start at depth 0.
function blockCommand(key) {
  const [, , node, attrs] = BLOCKS.find((b) => b[0] === key);
  return (state, dispatch) => {
    const cur = state.selection.$from.parent;
    const a = 'depth' in attrs && 'depth' in cur.attrs ? { depth: cur.attrs.depth } : attrs;
    return setBlockType(node, a)(state, dispatch);
  };
}

// `**bold**`, `*italic*`, `` `code` ``: the delimiters go, the text keeps the mark.
function markRule(re, name) {
  return new InputRule(re, (state, m, start, end) => {
    const type = state.schema.marks[name];
    if (!state.selection.$from.parent.type.allowsMarkType(type)) return null;
    const from = start + m[0].length - m[2].length;
    const tr = state.tr.insertText(m[3], from, end);
    tr.addMark(from, from + m[3].length, type.create()).removeStoredMark(type);
    return tr;
  });
}

function rules() {
  const n = schema.nodes;
  return inputRules({
    rules: [
      textblockTypeInputRule(/^(#{1,6})\s$/, n.heading, (m) => ({ level: m[1].length })),
      textblockTypeInputRule(/^\s*[-+*]\s$/, n.bullet_item, { depth: 0 }),
      textblockTypeInputRule(/^\d+[.)]\s$/, n.ordered_item, { depth: 0 }),
      textblockTypeInputRule(/^>\s$/, n.blockquote),
      textblockTypeInputRule(/^```([A-Za-z0-9+#_.-]{0,32})\s$/, n.code_block, (m) => ({ language: m[1] })),
      markRule(/(^|[^*])(\*\*([^*\s](?:[^*]*[^*\s])?)\*\*)$/, 'bold'),
      markRule(/(^|[^*\w])(\*([^*\s](?:[^*]*[^*\s])?)\*)$/, 'italic'),
      markRule(/(^|[^`])(`([^`]+)`)$/, 'code'),
    ],
  });
}

// Builds the editor in `host` with its toolbar in `bar`; returns {view, setLocked(bool)}.
export function richEditor({ host, bar, doc, docId }) {
  let view = null;
  let locked = false;
  const run = (cmd) => () => {
    if (locked) return;
    cmd(view.state, view.dispatch, view);
    view.focus();
  };

  // ---- the link editor ------------------------------------------------------------------------
  const hrefInput = el('input', { testid: 'link-href', placeholder: 'https://…', 'aria-label': 'link address' });
  const linkError = el('span', { class: 'error', testid: 'link-error', role: 'alert' });
  const linkBox = el('form', { class: 'link-editor', testid: 'link-editor', hidden: '' }, hrefInput,
                     el('button', { type: 'submit', testid: 'link-apply' }, 'Apply'),
                     el('button', { type: 'button', testid: 'link-remove' }, 'Remove'),
                     el('button', { type: 'button', testid: 'link-cancel' }, 'Cancel'), linkError);
  let linkRange = null;
  const closeLink = () => {
    linkBox.hidden = true;
    linkError.textContent = '';
    view.focus();
  };
  const openLink = (state) => {
    if (locked) return false;
    const { empty, from, to, $from } = state.selection;
    const around = markRange($from, schema.marks.link);
    if (empty && !around) return false;
    linkRange = empty ? { from: around.from, to: around.to } : { from, to };
    hrefInput.value = around?.mark.attrs.href ?? '';
    linkError.textContent = '';
    linkBox.hidden = false;
    hrefInput.focus();
    hrefInput.select();
    return true;
  };
  const applyLink = (href) => {
    if (href && !goodHref(href)) {
      linkError.textContent = 'A link is http(s), mailto, tel, ftp or a relative address.';
      return;
    }
    view.dispatch(view.state.tr.setSelection(TextSelection.create(view.state.doc, linkRange.from, linkRange.to)));
    setLink(href)(view.state, view.dispatch);
    closeLink();
  };
  linkBox.addEventListener('submit', (e) => {
    e.preventDefault();
    applyLink(hrefInput.value.trim());
  });
  linkBox.querySelector('[data-testid=link-remove]').addEventListener('click', () => applyLink(''));
  linkBox.querySelector('[data-testid=link-cancel]').addEventListener('click', closeLink);
  linkBox.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeLink(); });

  // ---- the toolbar ------------------------------------------------------------------------------
  const select = el('select', { testid: 'block-type', 'aria-label': 'block type' },
                    ...BLOCKS.map(([key, label]) => el('option', { value: key }, label)));
  select.addEventListener('change', () => run(blockCommand(select.value))());
  const markButtons = MARK_BUTTONS.map(([name, label, title]) => {
    const b = el('button', { type: 'button', class: `tool mark-${name}`, testid: `tool-${name}`, title, 'aria-pressed': 'false' }, label);
    b.addEventListener('mousedown', (e) => e.preventDefault());  // keep the editor's selection
    b.addEventListener('click', run(toggleMark(schema.marks[name])));
    return b;
  });
  const button = (testid, label, title, cmd) => {
    const b = el('button', { type: 'button', class: 'tool', testid, title }, label);
    b.addEventListener('mousedown', (e) => e.preventDefault());
    b.addEventListener('click', cmd);
    return b;
  };
  const linkButton = button('tool-link', 'Link', 'Link (Ctrl+K)', () => openLink(view.state));
  const tools = [
    select, ...markButtons, linkButton,
    button('tool-outdent', '⇤', 'Outdent list item (Shift+Tab)', run(indent(-1))),
    button('tool-indent', '⇥', 'Indent list item (Tab)', run(indent(1))),
    button('tool-undo', '↶', 'Undo (Ctrl+Z)', run(undo)),
    button('tool-redo', '↷', 'Redo (Ctrl+Shift+Z)', run(redo)),
    button('tool-export', 'Markdown ↓', 'Download as Markdown', () => {
      const a = el('a', { href: URL.createObjectURL(new Blob([doc.markdown()], { type: 'text/markdown' })), download: `${docId}.md` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    }),
  ];
  bar.append(...tools, linkBox);

  const refresh = (state) => {
    const { $from, from, to, empty } = state.selection;
    const marks = state.storedMarks || $from.marks();
    for (const b of markButtons) {
      const type = schema.marks[b.dataset.testid.slice(5)];
      const on = empty ? !!type.isInSet(marks) : state.doc.rangeHasMark(from, to, type);
      b.classList.toggle('active', on);
      b.setAttribute('aria-pressed', String(on));
    }
    const p = $from.parent;
    const key = p.type.name === 'heading' ? `h${p.attrs.level}` : BLOCKS.find((b) => b[2] === p.type.name)?.[0] ?? 'paragraph';
    if (select.value !== key) select.value = key;
    linkButton.classList.toggle('active', !!markRange($from, schema.marks.link));
  };

  const mark = (name) => toggleMark(schema.marks[name]);
  const keys = {
    'Mod-z': undo, 'Mod-y': redo, 'Shift-Mod-z': redo,
    'Mod-b': mark('bold'), 'Mod-i': mark('italic'), 'Mod-u': mark('underline'), 'Mod-Shift-x': mark('strike'), 'Mod-e': mark('code'),
    'Mod-k': (state) => openLink(state),
    'Mod-Alt-0': blockCommand('paragraph'), 'Mod-Shift-8': blockCommand('bullet'), 'Mod-Shift-7': blockCommand('ordered'),
    'Mod-Shift-9': blockCommand('quote'), 'Mod-Alt-c': blockCommand('code'),
    Enter: chainCommands(splitKeepingType, baseKeymap.Enter),
    Backspace: chainCommands(undoInputRule, liftAtStart, baseKeymap.Backspace),
    Tab: indent(1), 'Shift-Tab': indent(-1),
  };
  for (const l of [1, 2, 3, 4, 5, 6]) keys[`Mod-Alt-${l}`] = blockCommand(`h${l}`);

  view = new EditorView(host, {
    state: EditorState.create({
      doc: docFromHandle(doc),
      plugins: [rules(), keymap(keys), keymap(baseKeymap), history(), tandemPlugin(doc)],
    }),
    editable: () => !locked,
    dispatchTransaction(tr) {
      view.updateState(view.state.apply(tr));
      refresh(view.state);
    },
  });
  refresh(view.state);
  return {
    view,
    // Selects text offsets [from, to) (UTF-16, as the document counts) and focuses the editor.
    select(from, to = from) {
      const d = view.state.doc;
      view.dispatch(view.state.tr.setSelection(TextSelection.create(d, posAt(d, from), posAt(d, to))));
      view.focus();
    },
    // What the document holds, as this editor would show it (a test compares it with the editor's).
    engineJson: () => docFromHandle(doc).toJSON(),
    setLocked(on) {
      locked = on;
      view.setProps({ editable: () => !locked });
      for (const t of tools) t.disabled = on && t.dataset.testid !== 'tool-export';
    },
  };
}
