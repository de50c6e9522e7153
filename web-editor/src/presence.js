// Other people's cursors and selections in CodeMirror: a caret with a name label and a tinted
// selection per remote session, kept in place as the text changes.
import { StateEffect, StateField } from '@codemirror/state';
import { Decoration, EditorView, WidgetType } from '@codemirror/view';

// [{ id, name, color, anchor, head }] in UTF-16 offsets of the current text.
export const setRemoteCursors = StateEffect.define();

class CaretWidget extends WidgetType {
  constructor(name, color) {
    super();
    this.name = name;
    this.color = color;
  }
  eq(other) { return other.name === this.name && other.color === this.color; }
  toDOM() {
    const caret = document.createElement('span');
    caret.className = 'cm-remote-caret';
    caret.style.borderColor = this.color;
    const label = document.createElement('span');
    label.className = 'cm-remote-label';
    label.dataset.testid = 'remote-cursor';
    label.style.backgroundColor = this.color;
    label.textContent = this.name;
    caret.appendChild(label);
    return caret;
  }
  ignoreEvent() { return true; }
}

function build(cursors, docLength) {
  const ranges = [];
  for (const c of cursors) {
    const head = Math.min(c.head, docLength);
    const anchor = Math.min(c.anchor, docLength);
    const from = Math.min(head, anchor), to = Math.max(head, anchor);
    if (from < to) {
      ranges.push(Decoration.mark({ attributes: { style: `background-color: ${c.color}33` } }).range(from, to));
    }
    ranges.push(Decoration.widget({ widget: new CaretWidget(c.name, c.color), side: 1 }).range(head));
  }
  return Decoration.set(ranges, true);
}

export const remoteCursors = StateField.define({
  create: () => Decoration.none,
  update(deco, tr) {
    for (const e of tr.effects) {
      if (e.is(setRemoteCursors)) return build(e.value, tr.newDoc.length);
    }
    return tr.docChanged ? deco.map(tr.changes) : deco;
  },
  provide: (f) => EditorView.decorations.from(f),
});

// A stable color for a name: a hue from its hash.
export function colorFor(key) {
  let h = 0;
  for (const ch of key) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360}, 65%, 45%)`;
}
