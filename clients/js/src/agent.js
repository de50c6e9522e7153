// Which agent name a page edits as (docs/protocol.md section 10, step 1), in the browser: one per
// replica, never used by two live replicas at once (a Web Lock held for the life of the page), and
// continuing a gone page's agent when it left edits unsent, so that they are sent.

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

function session() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;  // storage blocked
  }
}

// records: what the store holds for the document ([{agent, unsent}]); subject: the token's.
export async function chooseAgent(docId, records, subject) {
  const key = `tandem-agent:${docId}`;
  const prefix = subject ? `${subject}/` : 'web-';
  const usable = (a) => !subject || a.startsWith(prefix);  // with auth, only the token's own agents
  const mine = session()?.getItem(key);
  let agent = null;
  if (mine && usable(mine) && (await lockAgent(mine))) agent = mine;
  for (const r of records) {
    if (agent) break;
    if (r.unsent > 0 && usable(r.agent) && (await lockAgent(r.agent))) agent = r.agent;
  }
  while (!agent) {
    const a = `${prefix}${randomHex(12)}`;
    if (await lockAgent(a)) agent = a;
  }
  session()?.setItem(key, agent);
  return agent;
}
