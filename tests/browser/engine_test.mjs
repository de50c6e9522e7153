// The engine compiled to WebAssembly, in Node: UTF-16 positions with emoji, CJK and combining
// marks; random concurrent editing by three replicas converges; snapshots load; bad bytes are
// refused with an error instead of a crash.
//   node engine_test.mjs path/to/tandem-engine.mjs
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';

const enginePath = path.resolve(process.argv[2] ?? '');
// The module is built for web and node; its node branch expects CommonJS globals.
globalThis.require = createRequire(import.meta.url);
globalThis.__dirname = path.dirname(enginePath);
const { default: createEngine } = await import(enginePath);
const M = await createEngine();

let seed = 12345;
const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };

// UTF-16 positions.
{
  const r = new M.Replica('alice');
  assert.equal(r.insert16(0, 'a👋b世e\u0301'), '');
  assert.equal(r.text(), 'a👋b世e\u0301');
  assert.equal(r.length16(), 'a👋b世e\u0301'.length);
  assert.equal(r.length(), 6);
  assert.equal(r.to16(2), 3);            // after the emoji
  assert.equal(r.from16(3), 2);
  assert.equal(r.from16(2), 1);          // inside the surrogate pair: its start
  assert.equal(r.remove16(1, 2), '');    // the emoji, both halves
  assert.equal(r.text(), 'ab世e\u0301');
  assert.notEqual(r.insert16(99, 'x'), '');  // past the end: an error, nothing changed
  assert.equal(r.text(), 'ab世e\u0301');
  assert.ok(!M.Replica.validAgent(''));
}

// Three replicas, random edits, random exchange, then everything: identical text.
for (let round = 0; round < 20; ++round) {
  const reps = ['a', 'b', 'c'].map((n) => new M.Replica(`${n}${round}`));
  const sent = reps.map(() => 0);
  const inbox = reps.map(() => []);
  const alphabet = ['x', 'y', '👋', '世', 'e\u0301', '\n'];
  for (let step = 0; step < 200; ++step) {
    const i = rand(3);
    const r = reps[i];
    const len = r.length16();
    if (len > 0 && rand(4) === 0) {
      let at = r.to16(r.from16(rand(len)));
      const end = r.to16(Math.min(r.length(), r.from16(at) + 1 + rand(3)));
      if (end > at) assert.equal(r.remove16(at, end - at), '');
    } else {
      const at = r.to16(rand(r.length() + 1));
      assert.equal(r.insert16(at, alphabet[rand(alphabet.length)]), '');
    }
    if (rand(5) === 0) {
      for (const b of r.ownOpsSince(sent[i], 100000, 4096)) for (let j = 0; j < 3; ++j) if (j !== i) inbox[j].push(b);
      sent[i] = r.ownNext();
    }
    if (rand(3) === 0 && inbox[i].length) {
      const k = rand(inbox[i].length);  // out of order; may wait for dependencies
      const res = r.apply(inbox[i][k]);
      assert.equal(res.error, undefined);
      if (rand(2)) inbox[i].splice(k, 1);  // else delivered again later: a duplicate
    }
  }
  for (let i = 0; i < 3; ++i) {
    for (const b of reps[i].ownOpsSince(0, 100000, 4096)) for (let j = 0; j < 3; ++j) if (j !== i) inbox[j].push(b);
  }
  for (let i = 0; i < 3; ++i) for (const b of inbox[i]) assert.equal(reps[i].apply(b).error, undefined);
  assert.equal(reps[1].text(), reps[0].text());
  assert.equal(reps[2].text(), reps[0].text());
  // A saved replica goes on under a new agent; the saved one's edits stay its own and unsent.
  assert.equal(M.Replica.load(reps[0].save(), `a${round}`), null);
  const copy = M.Replica.load(reps[0].save(), `a${round}-2`);
  assert.equal(copy.text(), reps[0].text());
  assert.equal(copy.agent(), `a${round}-2`);
  assert.equal(copy.unsent(), reps[0].unsent());
  // A record of an older editor: the bare snapshot, with the agent and its acknowledged count
  // kept beside it. save()'s bytes are "TCS" 2, one agent (u16), its name (u16 length, bytes),
  // its acknowledged count (u32), then the snapshot.
  const saved = reps[0].save();
  assert.equal(saved[6] | (saved[7] << 8), `a${round}`.length);
  const snapshot = saved.slice(4 + 2 + 2 + `a${round}`.length + 4);
  const old = M.Replica.loadSnapshot(snapshot, `a${round}`, 0, `a${round}-3`);
  assert.equal(old.text(), reps[0].text());
  assert.equal(old.unsent(), reps[0].ownNext());
  assert.equal(M.Replica.loadSnapshot(snapshot, '', 0, `a${round}-3`), null);
  assert.equal(M.Replica.loadSnapshot(snapshot, `a${round}`, 0, `a${round}`), null);
}

// Rich text in UTF-16 units: marks and blocks around an emoji; three replicas formatting and
// editing concurrently agree on spans and blocks, and a saved replica keeps them.
{
  const r = new M.Replica('fmt');
  assert.equal(r.insert16(0, 'Hi 👋 there\nsecond'), '');
  assert.equal(r.mark16(3, 2, 'bold', 'true'), '');              // the emoji, both halves
  assert.equal(r.mark16(6, 5, 'link', 'https://e.example/'), '');
  assert.equal(r.setBlock16(15, 'heading', '2'), '');
  assert.deepEqual(r.spans16(), [[3, 5, [['bold', 'true']]], [6, 11, [['link', 'https://e.example/']]]]);
  assert.deepEqual(r.blocks16(), [[0, 'paragraph', ''], [12, 'heading', '2']]);
  assert.equal(r.formatEvents(), 3);
  assert.match(r.mark16(0, 2, 'link', 'javascript:alert(1)'), /scheme/);
  assert.match(r.mark16(0, 99, 'bold', 'true'), /./);
  assert.equal(r.formatEvents(), 3);
}
for (let round = 0; round < 10; ++round) {
  const reps = ['a', 'b', 'c'].map((n) => new M.Replica(`${n}r${round}`));
  const names = [['bold', 'true'], ['italic', 'true'], ['link', '/x'], ['comment', 'c1'], ['comment', 'c2']];
  const blocks = [['heading', '1'], ['bullet', '0'], ['quote', ''], ['paragraph', '']];
  const sent = reps.map(() => 0);
  const inbox = reps.map(() => []);
  for (let step = 0; step < 150; ++step) {
    const i = rand(3);
    const r = reps[i];
    const len = r.length();
    const op = rand(6);
    if (op === 0 && len > 0) {
      const from = rand(len), n = 1 + rand(len - from);
      const [name, value] = names[rand(names.length)];
      assert.equal(rand(3) ? r.mark16(r.to16(from), r.to16(from + n) - r.to16(from), name, value)
        : r.unmark16(r.to16(from), r.to16(from + n) - r.to16(from), name, name === 'comment' ? value : ''), '');
    } else if (op === 1) {
      const [type, value] = blocks[rand(blocks.length)];
      assert.equal(r.setBlock16(r.to16(rand(len + 1)), type, value), '');
    } else if (op === 2 && len > 0) {
      const at = rand(len);
      assert.equal(r.remove16(r.to16(at), r.to16(at + 1) - r.to16(at)), '');
    } else {
      assert.equal(r.insert16(r.to16(rand(len + 1)), ['x', '👋', '\n', 'ab'][rand(4)]), '');
    }
    if (rand(4) === 0) {
      for (const b of r.ownOpsSince(sent[i], 100000, 4096)) for (let j = 0; j < 3; ++j) if (j !== i) inbox[j].push(b);
      sent[i] = r.ownNext();
    }
    if (rand(3) === 0 && inbox[i].length) {
      const k = rand(inbox[i].length);
      assert.equal(r.apply(inbox[i][k]).error, undefined);
      inbox[i].splice(k, 1);
    }
  }
  for (let i = 0; i < 3; ++i) {
    for (const b of reps[i].ownOpsSince(0, 100000, 4096)) for (let j = 0; j < 3; ++j) if (j !== i) inbox[j].push(b);
  }
  for (let i = 0; i < 3; ++i) for (const b of inbox[i]) assert.equal(reps[i].apply(b).error, undefined);
  for (let i = 1; i < 3; ++i) {
    assert.equal(reps[i].text(), reps[0].text());
    assert.deepEqual(reps[i].spans16(), reps[0].spans16());
    assert.deepEqual(reps[i].blocks16(), reps[0].blocks16());
  }
  const copy = M.Replica.load(reps[0].save(), `ar${round}-2`);
  assert.deepEqual(copy.spans16(), reps[0].spans16());
  assert.deepEqual(copy.blocks16(), reps[0].blocks16());
}

// Bad bytes.
{
  const r = new M.Replica('z');
  assert.match(r.apply(new Uint8Array([0x93, 1, 2])).error, /./);
  assert.match(r.apply(new Uint8Array([])).error, /./);
  assert.equal(M.Replica.load(new Uint8Array([1, 2, 3]), 'z'), null);
  assert.equal(r.text(), '');
}
console.log('engine in WebAssembly: all checks passed');
