// Which agent name a page edits as (docs/protocol.md section 10, step 1), in the browser: a new one
// for every page, never used by two live replicas at once (a Web Lock held for the life of the
// page), and which stored replica the page goes on from: one a gone page left with edits unsent,
// so that they are sent (under their own agents, which the new one lists in its HELLO).

// Random hex digits from Web Crypto (browsers, Node.js 19+); Node.js 18 has no global `crypto`,
// so there Math.random stands in (pass `agent` to openDocument for a name of your own).
export function randomHex(n) {
  const b = new Uint8Array(n / 2);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(b);
  else for (let i = 0; i < b.length; ++i) b[i] = Math.floor(Math.random() * 256);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// Who a token is for: a JWT's `sub`, or the subject of Tandem's own "v1|subject|..." tokens. Read
// only to name the agent "<subject>/..." as the server requires; the server checks the rest.
export function tokenSubject(token) {
  const parts = String(token || '').split('.');
  const decode = (p) => atob(p.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (p.length % 4)) % 4));
  try {
    if (parts.length === 3) return String(JSON.parse(decode(parts[1])).sub || '');
    if (parts.length === 2) {
      const f = decode(parts[0]).split('|');
      return f[0] === 'v1' ? f[1] : '';
    }
  } catch (e) {
    console.warn('tandem: cannot read the token', e);
  }
  return '';
}

// What a token says it grants, read without checking it (the server does): 'read', 'write', or ''
// when it does not say (a JWT's mode claim may have another name on the server). Lets an editor
// lock itself before the server's WELCOME confirms read-only.
export function tokenMode(token) {
  const parts = String(token || '').split('.');
  const decode = (p) => atob(p.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (p.length % 4)) % 4));
  try {
    if (parts.length === 3) {
      const mode = JSON.parse(decode(parts[1])).mode;
      return mode === 'read' || mode === 'write' ? mode : '';
    }
    if (parts.length === 2) {
      const f = decode(parts[0]).split('|');
      return f[0] === 'v1' ? (f[3] === 'r' ? 'read' : f[3] === 'w' ? 'write' : '') : '';
    }
  } catch {
    // not a token this can read: the server will say
  }
  return '';
}

// Holds a Web Lock named after the agent for the life of the page: a duplicated tab copies
// sessionStorage, and two replicas must not share an agent. Without Web Locks (Node.js), true.
function lockAgent(agent) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    locks.request(`tandem-agent:${agent}`, { ifAvailable: true }, (lock) => {
      resolve(!!lock);
      return lock ? new Promise(() => {}) : undefined;
    });
  });
}

// records: what the store holds for the document ([{agent, unsent, at}]); subject: the token's.
// Returns {agent, adopt}: a fresh agent, and the record to go on from (null: none), locked so that
// no other page adopts it too. A page never goes on writing as a stored agent: the store may be
// older than what that page sent before it went (a crash between a send and the next save).
export async function chooseAgent(docId, records, subject) {
  const prefix = subject ? `${subject}/` : 'web-';
  const usable = (a) => !subject || a.startsWith(prefix);  // with auth, only the token's own agents
  const newest = [...records].sort((a, b) => (b.at ?? 0) - (a.at ?? 0));
  let adopt = null;
  for (const r of newest) {
    if (r.unsent > 0 && usable(r.agent) && (await lockAgent(r.agent))) {
      adopt = r;
      break;
    }
  }
  // Else the newest stored replica (nothing unsent): the text shows at once, offline too.
  for (const r of adopt ? [] : newest) {
    if (usable(r.agent) && (await lockAgent(r.agent))) {
      adopt = r;
      break;
    }
  }
  let agent = null;
  while (!agent) {
    const a = `${prefix}${randomHex(12)}`;
    if (await lockAgent(a)) agent = a;
  }
  return { agent, adopt };
}
