// The protocol's messages in MessagePack (docs/protocol.md section 2.4), coded by @msgpack/msgpack.
// What this sends is what the protocol's encoders write: unsigned integers in their shortest form,
// strings as str, bytes (Uint8Array) as bin, arrays, nil and booleans; never maps or extensions.
// What it receives is checked against the same rules, and anything else is an error.
import { Encoder, Decoder } from '@msgpack/msgpack';

const encoder = new Encoder();

// Two rules the library does not keep by itself: floats are not integers (1.0 would read as 1),
// and strings must be well-formed UTF-8 (it would put in U+FFFD). Both hooks are methods of
// @msgpack/msgpack 3's Decoder; test/wire_test.mjs checks that they still take effect.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
class ProtocolDecoder extends Decoder {
  readF32() { throw new Error('a float (the protocol has unsigned integers only)'); }
  readF64() { throw new Error('a float (the protocol has unsigned integers only)'); }
  decodeUtf8String(byteLength, headerOffset) {
    const at = this.pos + headerOffset;
    const s = super.decodeUtf8String(byteLength, headerOffset);  // bounds and length limits
    try {
      strictUtf8.decode(this.bytes.subarray(at, at + byteLength));
    } catch {
      throw new Error('a string that is not well-formed UTF-8');
    }
    return s;
  }
}
// uint 64 comes back as a BigInt, so that a value past 2^53 is refused rather than rounded.
const decoder = new ProtocolDecoder({ useBigInt64: true });
// The message array is level 1; version 1 needs 2, the protocol refuses more than 3.
const MAX_DEPTH = 3;

// One message (an array) to bytes; a fresh Uint8Array each time.
export function encode(message) {
  return encoder.encode(message);
}

function check(v, depth) {
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || v instanceof Uint8Array) return v;
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${v} is not an unsigned integer`);
    return v;
  }
  if (typeof v === 'bigint') {
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`integer ${v} out of range`);
    return Number(v);
  }
  if (Array.isArray(v)) {
    if (depth >= MAX_DEPTH) throw new Error('nested too deep');
    for (let i = 0; i < v.length; ++i) v[i] = check(v[i], depth + 1);
    return v;
  }
  throw new Error(`a ${v?.constructor?.name ?? typeof v} (maps and extensions are not in the protocol)`);
}

// Bytes to one message; throws on anything malformed, truncated, followed by more bytes, nested
// too deep, or outside the protocol's types.
export function decode(bytes) {
  let v;
  try {
    v = decoder.decode(bytes);
  } catch (e) {
    throw new Error(`msgpack: ${e.message}`);
  }
  try {
    return check(v, 0);
  } catch (e) {
    throw new Error(`msgpack: ${e.message}`);
  }
}
