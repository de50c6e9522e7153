// @tandem/client/codemirror: binds one CodeMirror 6 EditorView to one Tandem document.
//   new EditorView({ doc: handle.text(), extensions: [basicSetup, tandemSync(handle)] })
// Local edits go to the document, remote ones come into the editor (outside its undo history, so
// undo takes back only one's own edits), the selection is sent as presence, and other people's
// carets and selections are drawn with name labels.
import { Annotation, ChangeSet, EditorState, StateEffect, StateField, Transaction } from '@codemirror/state';
import { Decoration, EditorView, ViewPlugin, WidgetType } from '@codemirror/view';
import { colorFor, isColor } from './color.js';

const remote = Annotation.define();

// [{ id, name, color, anchor, head }] in UTF-16 offsets of the current text.
export const setRemoteCursors = StateEffect.define();

// How long a name label shows after its caret moved; then it fades (it shows again on hover).
const LABEL_MS = 2500;

class CaretWidget extends WidgetType {
  // below: the label goes under the caret (on the first line, where above it would be cut off);
  // fresh: the caret moved a moment ago, so its label shows.
  constructor(name, color, below, fresh) {
    super();
    this.name = name;
    this.color = color;
    this.below = below;
    this.fresh = fresh;
  }
  eq(other) {
    return other.name === this.name && other.color === this.color && other.below === this.below && other.fresh === this.fresh;
  }
  toDOM() {
    const caret = document.createElement('span');
    caret.className = `cm-remote-caret${this.below ? ' cm-remote-caret-top' : ''}${this.fresh ? ' cm-remote-fresh' : ''}`;
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

function build(cursors, doc) {
  const ranges = [];
  for (const c of cursors) {
    const head = Math.min(c.head, doc.length);
    const anchor = Math.min(c.anchor ?? c.head, doc.length);
    const from = Math.min(head, anchor), to = Math.max(head, anchor);
    const color = isColor(c.color) ? c.color : colorFor(c.id);  // #rrggbb only: it goes into a style
    if (from < to) {
      ranges.push(Decoration.mark({ class: 'cm-remote-selection', attributes: { style: `background-color: ${color}40` } })
        .range(from, to));
    }
    const below = doc.lineAt(head).number === 1;
    ranges.push(Decoration.widget({ widget: new CaretWidget(c.name, color, below, !!c.fresh), side: 1 }).range(head));
  }
  return Decoration.set(ranges, true);
}

// Other people's carets (with name labels) and selections; fed by setRemoteCursors.
export const remoteCursors = StateField.define({
  create: () => Decoration.none,
  update(deco, tr) {
    for (const e of tr.effects) {
      if (e.is(setRemoteCursors)) return build(e.value, tr.newDoc);
    }
    return tr.docChanged ? deco.map(tr.changes) : deco;
  },
  provide: (f) => EditorView.decorations.from(f),
});

// The carets' look; an app may override these classes.
const theme = EditorView.baseTheme({
  '.cm-remote-caret': { position: 'relative', borderLeft: '2px solid', marginLeft: '-1px', marginRight: '-1px' },
  // A wider invisible strip around the 2 px caret, so that hovering over it shows the name.
  '.cm-remote-caret::before': { content: '""', position: 'absolute', top: '0', bottom: '0', left: '-4px', right: '-4px' },
  // The name covers text: it shows while the caret moves and on hover, then fades.
  '.cm-remote-label': {
    position: 'absolute', top: '-1.35em', left: '-2px', font: '11px/1.3 system-ui, sans-serif', color: '#fff',
    padding: '0 4px', borderRadius: '3px 3px 3px 0', whiteSpace: 'nowrap', pointerEvents: 'none', userSelect: 'none',
    zIndex: '5', opacity: '0', transition: 'opacity 0.4s',
  },
  '.cm-remote-fresh .cm-remote-label, .cm-remote-caret:hover .cm-remote-label': { opacity: '1', transition: 'opacity 0.1s' },
  // On the first line the label hangs below the caret: above it the editor's top edge cuts it off.
  '.cm-remote-caret-top .cm-remote-label': { top: '1.25em', borderRadius: '0 3px 3px 3px' },
});

// Other people's cursors, each marked fresh while its owner moved it within LABEL_MS.
function cursorsOf(doc, now) {
  return doc.peers().filter((p) => p.head !== null).map((p) => ({
    id: p.session, name: p.name, color: p.color, anchor: p.anchor, head: p.head, fresh: now - (p.movedAt ?? 0) < LABEL_MS,
  }));
}

// The extension binding a view to `doc` (a handle from openDocument). Create the view with
// `doc: doc.text()`; if its text differs, the document's replaces it. The line separator is "\n"
// only: "\r" is a character like any other, as in the engine.
export function tandemSync(doc) {
  const plugin = ViewPlugin.fromClass(class {
    constructor(view) {
      this.view = view;
      this.fadeTimer = null;
      this.off = [
        doc.on('change', (patches) => this.applyRemote(patches)),
        doc.on('presence', () => this.showCursors()),
      ];
      queueMicrotask(() => {
        if (this.off === null) return;
        if (view.state.doc.toString() !== doc.text()) this.resetText();
        this.showCursors();
        this.sendSelection(view.state);
      });
    }

    update(u) {
      let local = false;
      for (const tr of u.transactions) {
        if (!tr.docChanged || tr.annotation(remote)) continue;
        local = true;
        tr.changes.iterChanges((fromA, toA, fromB, _toB, inserted) => {
          // In the positions of the text as it is while the changes are applied one by one.
          if (toA > fromA) doc.delete(fromB, toA - fromA);
          if (inserted.length) doc.insert(fromB, inserted.toString());
        });
      }
      if (local && u.state.doc.length !== doc.length) {
        console.error('tandem: editor and document disagree after a local edit; reloading the text');
        queueMicrotask(() => this.resetText());
      }
      if (u.selectionSet || u.docChanged) this.sendSelection(u.state);
    }

    sendSelection(state) {
      const sel = state.selection.main;
      doc.setPresence({ anchor: sel.anchor, head: sel.head });
    }

    applyRemote(patches) {
      const view = this.view;
      let changes = ChangeSet.empty(view.state.doc.length);
      for (const [from, len, text] of patches) {
        changes = changes.compose(ChangeSet.of({ from, to: from + len, insert: text }, changes.newLength, '\n'));
      }
      view.dispatch({ changes, annotations: [remote.of(true), Transaction.addToHistory.of(false)] });
      if (view.state.doc.length !== doc.length) {
        // Never expected; if it happens, the document's text wins.
        console.error('tandem: editor and document disagree; reloading the text');
        this.resetText();
      }
    }

    resetText() {
      const view = this.view;
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: doc.text() },
                      annotations: [remote.of(true), Transaction.addToHistory.of(false)] });
    }

    showCursors() {
      const cursors = cursorsOf(doc, Date.now());
      this.view.dispatch({ effects: setRemoteCursors.of(cursors) });
      // Once the newest label has had its time, draw again without it.
      clearTimeout(this.fadeTimer);
      if (cursors.some((c) => c.fresh)) this.fadeTimer = setTimeout(() => this.off && this.showCursors(), LABEL_MS);
    }

    destroy() {
      for (const off of this.off) off();
      this.off = null;
      clearTimeout(this.fadeTimer);
    }
  });
  return [EditorState.lineSeparator.of('\n'), remoteCursors, theme, plugin];
}

export { tandemSync as tandemExtension };
