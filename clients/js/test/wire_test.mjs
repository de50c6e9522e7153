// The package's msgpack coding (@msgpack/msgpack behind src/wire.js) against the byte examples of
// docs/protocol.md section 12: what it sends is byte for byte what the protocol shows, what it
// receives decodes to the same values, and what the protocol forbids (maps, negative numbers,
// floats, extensions, trailing bytes, nesting past 3 levels) is refused.
//   node clients/js/test/wire_test.mjs
import assert from 'node:assert/strict';
import { encode, decode } from '../src/wire.js';

const hex = (s) => Uint8Array.from(s.split(/\s+/).filter(Boolean), (b) => parseInt(b, 16));
const show = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join(' ');
const batch = hex('93 01 91 a5 61 6c 69 63 65 91 97 00 00 00 00 02 90 a2 68 69');  // 12.1

// [value, bytes] straight from docs/protocol.md section 12.
const examples = [
  [[1, 1, ['alice'], ['alice', 2]], '94 01 01 91 a5 61 6c 69 63 65 92 a5 61 6c 69 63 65 02'],
  [[1, 1, ['bob'], []], '94 01 01 91 a3 62 6f 62 90'],
  [[10, 1, 7, false, []], '95 0a 01 07 c2 90'],
  [[10, 1, 8, true, ['alice', 2]], '95 0a 01 08 c3 92 a5 61 6c 69 63 65 02'],
  [[2, 1, batch], '93 02 01 c4 14 93 01 91 a5 61 6c 69 63 65 91 97 00 00 00 00 02 90 a2 68 69'],
  [[3, 1], '92 03 01'],
  [[3, 300], '92 03 cd 01 2c'],
  [[4, 'Alice', '#e91e63', 2, 2], '95 04 a5 41 6c 69 63 65 a7 23 65 39 31 65 36 33 02 02'],
  [[4, 'Alice', '#e91e63', null, null], '95 04 a5 41 6c 69 63 65 a7 23 65 39 31 65 36 33 c0 c0'],
  [[5, 7, 'alice', 'Alice', '#e91e63', 2, 2], '97 05 07 a5 61 6c 69 63 65 a5 41 6c 69 63 65 a7 23 65 39 31 65 36 33 02 02'],
  [[6, 7], '92 06 07'],
  [[15, 4403, 'this session is read-only'], `93 0f cd 11 33 b9 74 68 69 73 20 73 65 73 73 69 6f 6e 20 69 73 20 72 65 61 64 2d
    6f 6e 6c 79`],
];
for (const [value, bytes] of examples) {
  const want = hex(bytes);
  assert.equal(show(encode(value)), show(want), `encode ${JSON.stringify(value)}`);
  assert.deepEqual(decode(want), value, `decode ${show(want)}`);
}

// Integers in their shortest unsigned form, at every boundary; strings as str, bytes as bin.
const ints = [[127, '7f'], [128, 'cc 80'], [255, 'cc ff'], [256, 'cd 01 00'], [65535, 'cd ff ff'],
              [65536, 'ce 00 01 00 00'], [2 ** 32 - 1, 'ce ff ff ff ff'], [2 ** 32, 'cf 00 00 00 01 00 00 00 00']];
for (const [n, bytes] of ints) {
  assert.equal(show(encode([n])), `91 ${bytes}`, `encode ${n}`);
  assert.deepEqual(decode(hex(`91 ${bytes}`)), [n]);
}
assert.equal(show(encode(['x'.repeat(32)])).slice(0, 8), '91 d9 20', 'a 32-byte string is str 8');
assert.equal(show(encode([new Uint8Array(300)])).slice(0, 11), '91 c5 01 2c', '300 bytes are bin 16');
assert.deepEqual(decode(hex('91 d0 05')), [5], 'an int8-encoded 5 reads as 5');
assert.deepEqual(decode(hex('91 a4 f0 9f 91 8b')), ['👋']);

// What the protocol refuses.
const refused = {
  'a map': '81 a1 61 01',
  'a map inside': '92 01 80',
  'a negative integer': '91 ff',
  'a negative int 64': '91 d3 ff ff ff ff ff ff ff ff',
  'a float': '91 cb 3f f0 00 00 00 00 00 00',
  'a float 32': '91 ca 3f 80 00 00',
  'a string that is not UTF-8': '91 a2 c3 28',
  'a lone surrogate in UTF-8': '91 a3 ed a0 80',
  'an extension': '91 d4 01 00',
  'a timestamp': '91 d6 ff 00 00 00 01',
  'trailing bytes': '92 03 01 00',
  'a truncated message': '93 02 01 c4 14 93',
  'an empty message': '',
  'nesting past 3 levels': '91 91 91 91 01',
  'an integer past 2^53': '91 cf 00 40 00 00 00 00 00 00',
};
for (const [what, bytes] of Object.entries(refused)) {
  assert.throws(() => decode(hex(bytes)), /msgpack/, `${what} is refused`);
}
assert.deepEqual(decode(hex('91 91 91 01')), [[[1]]], '3 levels are fine');
console.log(`wire test passed: ${examples.length} protocol examples, ${ints.length} integer boundaries, ${Object.keys(refused).length} refusals`);
