// A document's past, read from the server's HTTP API (docs/http-api.md, "History"): sessions,
// who wrote what, differences between points, named versions; and a restore made on this
// handle's own replica, so that it is one edit of its own (undoable like any) that merges with
// whatever others type meanwhile. Points are what the API takes: a number of logged events, a
// UTC time ("2026-11-29T19:30:00Z") or a saved version's name.

// http(s)://HOST from the server's address (ws, wss, http, https; default: the page's origin).
export function httpBase(server) {
  const base = server ?? globalThis.location?.origin;
  if (!base) throw new Error('tandem: the document has no server address for its history');
  const u = new URL(base, globalThis.location?.href);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

// An answer the server refused: `code` is the API's (e.g. 'name_taken', 'version_unknown'),
// `status` the HTTP status.
export class HistoryError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'HistoryError';
    this.status = status;
    this.code = code;
  }
}

// The changes turning `from` into `to`, as few as a diff finds (Myers' algorithm over lines, then
// over the characters of each changed stretch): [{from, to, insert}] in UTF-16 offsets of `from`,
// ascending and not overlapping. What stays keeps its characters, and so whatever others type in
// it concurrently. Past `maxEdits` lines (or characters within a stretch) of difference, that
// stretch is one replacement.
export function changes(from, to, maxEdits = 2000) {
  const out = [];
  const lines = [from.split(/(?<=\n)/), to.split(/(?<=\n)/)];
  for (const g of gaps(lines[0], lines[1], maxEdits)) {
    const at = lines[0].slice(0, g.a0).join('').length;
    const a = Array.from(lines[0].slice(g.a0, g.a1).join(''));
    const b = Array.from(lines[1].slice(g.b0, g.b1).join(''));
    for (const c of gaps(a, b, maxEdits)) {
      const f = at + a.slice(0, c.a0).join('').length;
      out.push({ from: f, to: f + a.slice(c.a0, c.a1).join('').length, insert: b.slice(c.b0, c.b1).join('') });
    }
  }
  return out;
}

// The stretches where a and b differ: [{a0, a1, b0, b1}] ascending, from a shortest edit script;
// one stretch of everything between the common ends past maxD edits.
function gaps(a, b, maxD) {
  let matches = matchLines(a, b, maxD);
  if (!matches) {
    let p = 0;
    while (p < a.length && p < b.length && a[p] === b[p]) p++;
    let q = 0;
    while (q < a.length - p && q < b.length - p && a[a.length - 1 - q] === b[b.length - 1 - q]) q++;
    matches = [];
    for (let i = 0; i < p; i++) matches.push([i, i]);
    for (let i = q; i > 0; i--) matches.push([a.length - i, b.length - i]);
  }
  const out = [];
  let ai = 0;
  let bj = 0;
  for (const [i, j] of [...matches, [a.length, b.length]]) {
    if (i > ai || j > bj) out.push({ a0: ai, a1: i, b0: bj, b1: j });
    ai = i + 1;
    bj = j + 1;
  }
  return out;
}

// The pairs (i, j) of a[i] === b[j] of a shortest edit script, ascending; null past maxD edits.
function matchLines(a, b, maxD) {
  const n = a.length;
  const m = b.length;
  const o = maxD + 1;
  let v = new Int32Array(2 * maxD + 3);
  const trace = [];
  for (let d = 0; d <= maxD; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[o + k - 1] < v[o + k + 1]) ? v[o + k + 1] : v[o + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[o + k] = x;
      if (x >= n && y >= m) {
        // Back from (n, m): the diagonals walked are the matches.
        const pairs = [];
        let [px, py] = [n, m];
        for (let e = d; e >= 0; e--) {
          const w = trace[e];
          const kk = px - py;
          let sx = 0;
          let sy = 0;
          if (e > 0) {
            const down = kk === -e || (kk !== e && w[o + kk - 1] < w[o + kk + 1]);
            const pk = down ? kk + 1 : kk - 1;
            const prevX = w[o + pk];
            const prevY = prevX - pk;
            [sx, sy] = down ? [prevX, prevY + 1] : [prevX + 1, prevY];
            while (px > sx && py > sy) pairs.push([--px, --py]);
            [px, py] = [prevX, prevY];
          } else {
            while (px > sx && py > sy) pairs.push([--px, --py]);
          }
        }
        return pairs.reverse();
      }
    }
  }
  return null;
}

export class DocumentHistory {
  // doc: the TandemDocument; token(): its current access token.
  constructor(doc, token) {
    this.doc = doc;
    this.token = token;
  }

  async request(method, tail, body) {
    const headers = {};
    const t = this.token();
    if (t) headers.Authorization = `Bearer ${t}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${httpBase(this.doc.server)}/api/docs/${this.doc.docId}${tail}`,
                            { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) {
      throw new HistoryError(res.status, answer?.error?.code ?? 'http_error', answer?.error?.message ?? `HTTP ${res.status}`);
    }
    return answer;
  }

  // {events, sessions: [{from, to, author, agents, first, last, inserted, deleted, formatted}],
  //  next, versions}: sessions newest first, a page of `limit`.
  sessions({ limit, offset, gap } = {}) {
    return this.request('GET', `/history${query({ limit, offset, gap })}`);
  }
  // {events, length, spans: [{from, to, agent, time, time_ms}]}: offsets in code points.
  blame(at) { return this.request('GET', `/blame${query({ at })}`); }
  // {from, to, runs: [{kind: 'kept' | 'inserted' | 'deleted', text, agents}]}.
  diff(from, to) { return this.request('GET', `/diff${query({ from, to })}`); }
  // [{name, events, agent, time, time_ms}], newest first.
  async versions() { return (await this.request('GET', '/versions')).versions; }
  // Names `at` (default: everything the server has logged; wait for unsent() to reach 0 first to
  // include this handle's own edits), saved as this handle's agent's. Rejects with code
  // 'name_taken' for a name in use.
  saveVersion(name, { at } = {}) {
    const body = { name, agent: this.doc.agent };
    if (at !== undefined) body.at = String(at);
    return this.request('POST', '/versions', body);
  }

  // The text as it was at `point`, made again by this handle as one edit (changes() of the text it
  // has now: plain text; a rich document's formatting is not restored this way, the HTTP API's
  // restore does that). `apply(edits)` makes the edits (offsets of the text before any of them);
  // an editor passes its own, so that the restore is one step of its undo history; by default the
  // document's delete and insert. Resolves to false when nothing differed.
  async restore(point, apply) {
    const then = await this.textAt(point);
    const edits = changes(this.doc.text(), then);
    if (!edits.length) return false;
    if (apply) {
      apply(edits);
    } else {
      for (const e of [...edits].reverse()) {
        if (e.to > e.from) this.doc.delete(e.from, e.to - e.from);
        if (e.insert) this.doc.insert(e.from, e.insert);
      }
    }
    return true;
  }

  // The content at a point (a count of logged events, a version's name, a time) as the handle
  // reads its own: {text, spans, blocks} in UTF-16 offsets, every block listed (paragraphs too).
  // What a rich editor builds its document from (@tandem/client/prosemirror's docFromContent).
  async contentAt(point) {
    let q = `?until=${encodeURIComponent(String(point))}`;
    if (/^\d+$/.test(String(point))) {
      q = `?at=${point}`;
    } else {
      const v = (await this.versions()).find((x) => x.name === point);
      if (v) q = `?at=${v.events}`;
    }
    const d = await this.request('GET', q);
    // Code points (the API's unit) to UTF-16.
    const u16 = [0];
    for (const c of d.text) u16.push(u16[u16.length - 1] + c.length);
    const at16 = (cp) => u16[Math.min(cp, u16.length - 1)];
    const typed = new Map(d.blocks.map((b) => [b.at, b]));
    const blocks = [];
    let cp = 0;
    for (const line of d.text.split('\n')) {
      const b = typed.get(cp);
      blocks.push({ at: at16(cp), type: b ? b.type : 'paragraph', attrs: b ? b.attrs : {} });
      cp += Array.from(line).length + 1;
    }
    return { text: d.text, blocks, spans: d.spans.map((x) => ({ from: at16(x.from), to: at16(x.to), marks: x.marks })) };
  }

  // The text at a point (a version's name, a count of logged events, a time): the diff from it
  // to itself, which every point form is valid for.
  async textAt(point) {
    const d = await this.diff(point, point);
    return d.runs.map((r) => r.text).join('');
  }
}

function query(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') parts.push(`${k}=${encodeURIComponent(String(v))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}
