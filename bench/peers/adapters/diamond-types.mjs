// diamond-types adapter (diamond-types-node: the Rust engine compiled to WebAssembly).
// One Doc; its positions are Unicode code points, like the traces'. A diamond-types file holds the
// operation log only, so load (Doc.fromBytes, then get) merges the whole history: it is the peer
// for Tandem's merge_ms as much as for load_ms.
import dt from 'diamond-types-node';

export const name = 'diamond-types';
export const pkg = 'diamond-types-node';
export const api = 'Doc.ins/del (code points) per patch; encode = doc.toBytes(); ' +
  'load = Doc.fromBytes (replays the whole operation log) + get()';

const AGENT = 'bench';

export function replay(txns) {
  const doc = new dt.Doc(AGENT);
  for (let i = 0; i < txns.length; i++) {
    const patches = txns[i];
    for (let j = 0; j < patches.length; j++) {
      const [pos, del, ins] = patches[j];
      if (del > 0) doc.del(pos, del);
      if (ins.length > 0) doc.ins(pos, ins);
    }
  }
  return doc;
}

export function text(doc) {
  return doc.get();
}

export function encode(doc) {
  return doc.toBytes();
}

export function load(bytes) {
  return dt.Doc.fromBytes(bytes, 'reader');
}
