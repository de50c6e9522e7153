// json-joy adapter: a JSON CRDT Model whose root is a "str" node (RGA string).
// Edits go through the local-change API (model.api.str([]).ins/.del); the
// buffered operations are flushed into one JSON CRDT Patch per trace
// transaction, which is what an application shipping patches would do.
// In 17.67 the logical-clock constructor is Model.create(schema, sid)
// (older releases called it Model.withLogicalClock).
import { Model, s } from 'json-joy/lib/json-crdt/index.js';

// Fixed session id (json-joy's default is a random number of up to 53 bits).
const SID = 0x1c1e597a3c1e59;

export const name = 'json-joy';
export const pkg = 'json-joy';
export const api = 'Model.create(s.str(""), sid) + model.api.str([]).ins/.del, model.api.flush() per txn; ' +
  'encode = model.toBinary(); load = Model.fromBinary';

export function replay(txns) {
  const model = Model.create(s.str(''), SID);
  model.api.flush(); // drop the patch that created the root string
  const str = model.api.str([]);
  for (let i = 0; i < txns.length; i++) {
    const patches = txns[i];
    for (let j = 0; j < patches.length; j++) {
      const [pos, del, ins] = patches[j];
      if (del > 0) str.del(pos, del);
      if (ins.length > 0) str.ins(pos, ins);
    }
    model.api.flush();
  }
  return model;
}

export function text(model) {
  return model.view();
}

export function encode(model) {
  return model.toBinary();
}

export function load(bytes) {
  return Model.fromBinary(bytes);
}
