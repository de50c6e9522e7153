// A stable colour for a name or agent: a hue from its hash.
export function colorFor(key) {
  let h = 0;
  for (const ch of String(key)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360}, 65%, 45%)`;
}
