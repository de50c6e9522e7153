// Yjs adapter: one Y.Doc holding a Y.Text named "text".
// Each trace transaction is one doc.transact() call, as an editor binding would do.
import * as Y from 'yjs';

// A fixed client id (same 32-bit size class as Yjs' random default) keeps
// snapshot sizes identical from run to run.
const CLIENT_ID = 0x7a3c1e59;

export const name = 'yjs';
export const pkg = 'yjs';
export const api = 'Y.Doc + Y.Text insert/delete inside doc.transact (one per txn); ' +
  'encode = Y.encodeStateAsUpdate (V1, gc on); load = Y.applyUpdate into a new Y.Doc';

export function replay(txns) {
  const doc = new Y.Doc(); // gc: true is the default
  doc.clientID = CLIENT_ID;
  const text = doc.getText('text');
  for (let i = 0; i < txns.length; i++) {
    const patches = txns[i];
    doc.transact(() => {
      for (let j = 0; j < patches.length; j++) {
        const [pos, del, ins] = patches[j];
        if (del > 0) text.delete(pos, del);
        if (ins.length > 0) text.insert(pos, ins);
      }
    });
  }
  return doc;
}

export function text(doc) {
  return doc.getText('text').toString();
}

export function encode(doc) {
  return Y.encodeStateAsUpdate(doc);
}

// Untimed extra sizes reported next to the main snapshot size.
export function extraSizes(doc) {
  return { snapshot_v2_bytes: Y.encodeStateAsUpdateV2(doc).byteLength };
}

export function load(bytes) {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, bytes);
  return doc;
}
