// The msgpack subset the protocol uses (docs/protocol.md section 2.4): nil, bool, unsigned
// integers, str, bin and arrays. Anything else in a server message is an error.

const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder('utf-8', { fatal: true });

export function encode(value) {
  const out = [];
  let bytes = 0;
  const push = (b) => { out.push(b); bytes += b.length; };
  const head = (small, codes, n) => {
    if (small !== null && n < 32 && codes === 'str') push(Uint8Array.of(0xa0 | n));
    else if (n < 256) push(Uint8Array.of(codes === 'str' ? 0xd9 : 0xc4, n));
    else if (n < 65536) push(Uint8Array.of(codes === 'str' ? 0xda : 0xc5, n >> 8, n & 255));
    else push(Uint8Array.of(codes === 'str' ? 0xdb : 0xc6, n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255));
  };
  const walk = (v) => {
    if (v === null || v === undefined) push(Uint8Array.of(0xc0));
    else if (v === true) push(Uint8Array.of(0xc3));
    else if (v === false) push(Uint8Array.of(0xc2));
    else if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`msgpack: ${v} is not an unsigned integer`);
      if (v < 128) push(Uint8Array.of(v));
      else if (v < 256) push(Uint8Array.of(0xcc, v));
      else if (v < 65536) push(Uint8Array.of(0xcd, v >> 8, v & 255));
      else if (v < 2 ** 32) push(Uint8Array.of(0xce, v >>> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255));
      else {
        const b = new Uint8Array(9);
        b[0] = 0xcf;
        new DataView(b.buffer).setBigUint64(1, BigInt(v));
        push(b);
      }
    } else if (typeof v === 'string') {
      const s = utf8enc.encode(v);
      head(true, 'str', s.length);
      push(s);
    } else if (v instanceof Uint8Array) {
      head(null, 'bin', v.length);
      push(v);
    } else if (Array.isArray(v)) {
      const n = v.length;
      if (n < 16) push(Uint8Array.of(0x90 | n));
      else if (n < 65536) push(Uint8Array.of(0xdc, n >> 8, n & 255));
      else push(Uint8Array.of(0xdd, n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255));
      for (const x of v) walk(x);
    } else {
      throw new Error(`msgpack: cannot encode ${typeof v}`);
    }
  };
  walk(value);
  const buf = new Uint8Array(bytes);
  let at = 0;
  for (const b of out) { buf.set(b, at); at += b.length; }
  return buf;
}

// Decodes one message; throws on anything malformed, truncated, followed by more bytes, or
// nested deeper than `maxDepth`.
export function decode(bytes, maxDepth = 4) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n) => { if (at + n > bytes.length) throw new Error('msgpack: truncated'); };
  const u8 = () => { need(1); return bytes[at++]; };
  const u16 = () => { need(2); const v = view.getUint16(at); at += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(at); at += 4; return v; };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(at);
    at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('msgpack: integer too large');
    return Number(v);
  };
  const raw = (n) => { need(n); const b = bytes.subarray(at, at + n); at += n; return b; };
  const str = (n) => utf8dec.decode(raw(n));
  const arr = (n, depth) => {
    if (depth >= maxDepth) throw new Error('msgpack: nested too deep');
    if (n > bytes.length - at) throw new Error('msgpack: truncated');
    const a = new Array(n);
    for (let i = 0; i < n; ++i) a[i] = walk(depth + 1);
    return a;
  };
  const walk = (depth) => {
    const c = u8();
    if (c < 0x80) return c;
    if ((c & 0xf0) === 0x90) return arr(c & 15, depth);
    if ((c & 0xe0) === 0xa0) return str(c & 31);
    switch (c) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return raw(u8()).slice();
      case 0xc5: return raw(u16()).slice();
      case 0xc6: return raw(u32()).slice();
      case 0xcc: return u8();
      case 0xcd: return u16();
      case 0xce: return u32();
      case 0xcf: return u64();
      case 0xd9: return str(u8());
      case 0xda: return str(u16());
      case 0xdb: return str(u32());
      case 0xdc: return arr(u16(), depth);
      case 0xdd: return arr(u32(), depth);
      default: throw new Error(`msgpack: unexpected type byte 0x${c.toString(16)}`);
    }
  };
  const v = walk(0);
  if (at !== bytes.length) throw new Error('msgpack: trailing bytes');
  return v;
}
