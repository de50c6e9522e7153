// Automerge adapter (3.x default API, formerly "next"): a document {text: ""}
// whose string field is a collaborative text object. Each trace transaction
// is one Automerge.change() with Automerge.splice() calls inside.
import * as Automerge from '@automerge/automerge';

// Fixed 16-byte actor id (Automerge's default is 16 random bytes).
const ACTOR = '5a17c0de3c1e597a5a17c0de3c1e597a';
const PATH = ['text'];

export const name = 'automerge';
export const pkg = '@automerge/automerge';
export const api = 'Automerge.from({text:""}) then Automerge.change per txn with Automerge.splice(d, ["text"], pos, del, ins); ' +
  'encode = Automerge.save; load = Automerge.load';

export function replay(txns) {
  let doc = Automerge.from({ text: '' }, { actor: ACTOR });
  for (let i = 0; i < txns.length; i++) {
    const patches = txns[i];
    doc = Automerge.change(doc, (d) => {
      for (let j = 0; j < patches.length; j++) {
        const [pos, del, ins] = patches[j];
        Automerge.splice(d, PATH, pos, del, ins);
      }
    });
  }
  return doc;
}

export function text(doc) {
  return String(doc.text);
}

export function encode(doc) {
  return Automerge.save(doc);
}

export function load(bytes) {
  return Automerge.load(bytes);
}
