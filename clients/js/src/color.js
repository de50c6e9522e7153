// Colours for the people on a document: a palette of clearly distinct colours, dark enough for
// white label text, chosen so that the people present get different ones.
export const PALETTE = ['#1e88e5', '#e53935', '#43a047', '#fb8c00', '#8e24aa', '#00897b', '#d81b60', '#3949ab',
                        '#6d4c41', '#546e7a'];

// A colour a peer may announce: #rrggbb (anything else could inject CSS where it is drawn).
export function isColor(c) { return typeof c === 'string' && /^#[0-9a-fA-F]{6}$/.test(c); }

// A stable palette colour for a name or agent: where it starts looking.
export function colorFor(key) {
  let h = 0;
  for (const ch of String(key)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

// `preferred` unless `taken` has it, else the first palette colour not taken (the palette again,
// from `preferred`'s place, when every colour is taken).
export function distinctColor(preferred, taken) {
  const want = isColor(preferred) ? preferred.toLowerCase() : PALETTE[0];
  if (!taken.has(want)) return want;
  const start = Math.max(0, PALETTE.indexOf(want));
  for (let i = 0; i < PALETTE.length; ++i) {
    const c = PALETTE[(start + i) % PALETTE.length];
    if (!taken.has(c)) return c;
  }
  return want;
}
