// Loro adapter: one LoroDoc with a LoroText container named "text".
// Each trace transaction is followed by one doc.commit().
import { LoroDoc } from 'loro-crdt';

// Fixed 64-bit peer id (Loro's default is a random u64) for reproducible sizes.
const PEER_ID = 0x3c1e597a3c1e597an;

export const name = 'loro';
export const pkg = 'loro-crdt';
export const api = 'LoroDoc.getText + LoroText.insert/delete (UTF-16 index), doc.commit() per txn; ' +
  'encode = doc.export({mode:"snapshot"}); load = LoroDoc.fromSnapshot';

export function replay(txns) {
  const doc = new LoroDoc();
  doc.setPeerId(PEER_ID);
  const text = doc.getText('text');
  for (let i = 0; i < txns.length; i++) {
    const patches = txns[i];
    for (let j = 0; j < patches.length; j++) {
      const [pos, del, ins] = patches[j];
      if (del > 0) text.delete(pos, del);
      if (ins.length > 0) text.insert(pos, ins);
    }
    doc.commit();
  }
  return doc;
}

export function text(doc) {
  return doc.getText('text').toString();
}

export function encode(doc) {
  return doc.export({ mode: 'snapshot' });
}

export function load(bytes) {
  return LoroDoc.fromSnapshot(bytes);
}
