// Two real Chromium pages on one document, against a real `tandem serve` on loopback:
// concurrent typing with emoji and CJK, presence labels, both offline with edits and a reload
// while offline, the server killed (SIGKILL) and restarted mid-session; every time both pages
// converge to the same text, which the server stores (checked with `tandem export`); then, with
// JWT auth, a page given a token on its URL.
//   node editor_test.mjs --tandem BIN --static DIST [--artifacts DIR]
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { arg, checkNode, freePort, launchChromium, log, sleep, tandemServer, waitFor, waitStatus, status } from './harness.mjs';

checkNode('the browser test');
const tandem = arg('--tandem');
const staticDir = arg('--static');
const artifacts = arg('--artifacts', path.join(os.tmpdir(), 'tandem-artifacts'));
assert.ok(tandem && fs.existsSync(tandem), '--tandem BIN');
assert.ok(staticDir && fs.existsSync(path.join(staticDir, 'index.html')), `--static DIR with index.html (run web-editor/build.sh): ${staticDir}`);
fs.mkdirSync(artifacts, { recursive: true });

const data = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-browser-'));
const port = await freePort();
const server = tandemServer({ tandem, port, data, site: staticDir });
const startServer = (extra) => server.start(extra);
const stopServer = (signal) => server.stop(signal);

const text = (page) => page.evaluate(() => window.tandem.text());
const shown = (page) => page.evaluate(() => window.tandem.view.state.doc.toString());
const unsent = (page) => page.evaluate(() => window.tandem.client.unsent());
// Both pages show the same text as their replicas, and nothing is left unsent.
async function converged(a, b, ms = 20000) {
  await waitFor(async () => {
    const [ta, tb, sa, sb, ua, ub] = await Promise.all([text(a), text(b), shown(a), shown(b), unsent(a), unsent(b)]);
    return ta === tb && sa === ta && sb === tb && ua === 0 && ub === 0;
  }, ms, 'both pages to converge with nothing unsent');
  return text(a);
}
async function typeAt(page, where, str) {
  await page.evaluate((pos) => {
    const v = window.tandem.view;
    const at = pos === 'end' ? v.state.doc.length : Math.min(pos, v.state.doc.length);
    v.dispatch({ selection: { anchor: at } });
    v.focus();
  }, where);
  await page.keyboard.type(str, { delay: 15 });
}
function exported(doc) {
  return execFileSync(tandem, ['export', '--db', path.join(data, 'tandem.db'), '--doc', doc], { encoding: 'utf8' });
}

const browser = await launchChromium();
const doc = `browser-${process.pid}`;
const url = `http://127.0.0.1:${port}/d/${doc}`;
let failed = false;
try {
  await startServer();
  const ctxA = await browser.newContext({ viewport: { width: 640, height: 420 } });
  const ctxB = await browser.newContext({ viewport: { width: 640, height: 420 } });
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  for (const [p, n] of [[a, 'A'], [b, 'B']]) {
    p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log(`page ${n}:`, m.text()); });
    p.on('pageerror', (e) => log(`page ${n} error:`, e.message));
  }

  // The picker opens a document by name.
  await a.goto(`http://127.0.0.1:${port}/`);
  await a.fill('[data-testid=doc-name]', doc);
  await a.click('button[type=submit]');
  await a.waitForURL(url);
  await b.goto(url);
  await Promise.all([waitStatus(a, ['connected']), waitStatus(b, ['connected'])]);
  await Promise.all([a, b].map((p) => p.evaluate(() => navigator.serviceWorker.ready.then(() => true))));
  log('both connected');

  // Names and presence: each page shows the other's cursor label.
  await a.fill('[data-testid=name]', 'Ada');
  await b.fill('[data-testid=name]', 'Bo');
  await typeAt(a, 0, 'Start.\n');
  await converged(a, b);
  await b.click('.cm-content');
  await typeAt(b, 'end', '');
  await waitFor(async () => (await a.textContent('[data-testid=remote-cursor]').catch(() => null)) === 'Bo', 10000, "A to show Bo's cursor");
  await waitFor(async () => (await b.textContent('[data-testid=remote-cursor]').catch(() => null)) === 'Ada', 10000, "B to show Ada's cursor");
  assert.match(await a.textContent('[data-testid=people]'), /Bo/);
  log('presence labels shown');

  // Concurrent typing at the same place, with emoji, CJK and a combining mark.
  const sa = 'Hello 👋 from Ada. ', sb = '你好，来自 Bo 的问候 café e\u0301 ';
  await Promise.all([typeAt(a, 'end', sa), typeAt(b, 'end', sb)]);
  let t = await converged(a, b);
  assert.ok(t.includes(sa) && t.includes(sb), `both runs intact (not interleaved): ${JSON.stringify(t)}`);
  log('concurrent typing converged:', JSON.stringify(t));

  // Screenshot of the two pages side by side.
  const [pa, pb] = await Promise.all([a.screenshot(), b.screenshot()]);
  const shot = await ctxA.newPage();
  await shot.setViewportSize({ width: 1300, height: 440 });
  await shot.setContent(`<body style="margin:0;display:flex;gap:20px;background:#888">
    <img src="data:image/png;base64,${pa.toString('base64')}"><img src="data:image/png;base64,${pb.toString('base64')}"></body>`);
  await shot.screenshot({ path: path.join(artifacts, 'two-editors.png') });
  await shot.close();
  log('screenshot saved to', path.join(artifacts, 'two-editors.png'));

  // Both offline: editing goes on, status offline, unsent counted; B reloads while offline.
  await Promise.all([ctxA.setOffline(true), ctxB.setOffline(true)]);
  await Promise.all([waitStatus(a, ['offline']), waitStatus(b, ['offline'])]);
  const oa = 'A offline 🚀 ', ob = 'B offline 東京 ';
  await typeAt(a, 0, oa);
  await typeAt(b, 'end', ob);
  assert.ok((await unsent(a)) > 0 && (await unsent(b)) > 0, 'offline edits are counted as unsent');
  await waitFor(async () => (await b.getAttribute('[data-testid=unsent]', 'data-count')) !== '0', 2000, 'B to show unsent edits');
  await sleep(400);  // the replica is saved to IndexedDB 100 ms after the last edit
  await b.reload();
  await b.waitForFunction(() => window.tandem && window.tandem.view);
  assert.equal(await status(b), 'offline');
  assert.ok((await text(b)).includes(ob), 'B still has its unsent text after a reload while offline');
  log('B reloaded offline with its unsent text');
  await Promise.all([ctxA.setOffline(false), ctxB.setOffline(false)]);
  await Promise.all([waitStatus(a, ['connected']), waitStatus(b, ['connected'])]);
  t = await converged(a, b);
  assert.ok(t.includes(oa) && t.includes(ob) && t.includes(sa) && t.includes(sb), `offline edits merged: ${JSON.stringify(t)}`);
  log('offline edits merged');

  // The server killed mid-session, edits made while it is down, then it restarts.
  const ex = await stopServer('SIGKILL');
  assert.equal(ex.sig, 'SIGKILL');
  await Promise.all([waitStatus(a, ['offline', 'connecting']), waitStatus(b, ['offline', 'connecting'])]);
  const ka = 'while the server was down ', kb = 'B too ✓ ';
  await typeAt(a, 'end', ka);
  await typeAt(b, 0, kb);
  await sleep(500);
  await startServer();
  await Promise.all([waitStatus(a, ['connected'], 30000), waitStatus(b, ['connected'], 30000)]);
  t = await converged(a, b);
  assert.ok(t.includes(ka) && t.includes(kb), `edits made while the server was down merged: ${JSON.stringify(t)}`);
  log('converged after the server restart');

  // Undo takes back one's own edit only.
  await typeAt(a, 'end', 'UNDO-ME');
  await typeAt(b, 0, 'keep ');
  await converged(a, b);
  await a.keyboard.press('Control+z');
  t = await converged(a, b);
  assert.ok(!t.includes('UNDO-ME') && t.startsWith('keep '), `undo removed only A's edit: ${JSON.stringify(t)}`);
  await a.keyboard.press('Control+y');
  t = await converged(a, b);
  assert.ok(t.includes('UNDO-ME') && t.startsWith('keep '), `redo brought A's edit back: ${JSON.stringify(t)}`);
  log('undo takes back only one\'s own edit, redo brings it back');

  // What the server stores is what both pages show.
  const ended = await stopServer('SIGTERM');
  assert.equal(ended.code, 0);
  assert.equal(exported(doc), t);
  log('the stored text equals both pages');
  await ctxA.close();
  await ctxB.close();

  // With JWT auth: a page given a token (minted by PyJWT) on its URL connects, edits as the
  // token's subject, keeps the token over a reload but not in the address bar; a page without one
  // never connects.
  const secret = 'browser-test-secret-0123456789abcdef';
  const secretFile = path.join(data, 'jwt-secret');
  fs.writeFileSync(secretFile, `${secret}\n`);
  await startServer(['--jwt-secret-file', secretFile]);
  const token = execFileSync('/usr/bin/python3', ['-c', `
import json, sys, time, jwt
claims = {"sub": "ada", "doc": "jwt-*", "mode": "write", "exp": int(time.time()) + 600}
print(jwt.encode(claims, sys.argv[1], algorithm="HS256"))`, secret], { encoding: 'utf8' }).trim();
  const ctxC = await browser.newContext({ viewport: { width: 640, height: 420 } });
  const c = await ctxC.newPage();
  c.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log('page C:', m.text()); });
  await c.goto(`http://127.0.0.1:${port}/d/jwt-doc?token=${token}`);
  await waitStatus(c, ['connected']);
  assert.equal(new URL(c.url()).search, '', 'the token is taken out of the address bar');
  assert.match(await c.evaluate(() => window.tandem.agent), /^ada\//);
  await typeAt(c, 0, 'signed in');
  await waitFor(async () => (await unsent(c)) === 0, 10000, "the JWT page's edit to be acknowledged");
  await c.reload();
  await c.waitForFunction(() => window.tandem && window.tandem.view);
  await waitStatus(c, ['connected']);
  const api = await (await fetch(`http://127.0.0.1:${port}/api/docs/jwt-doc`, { headers: { authorization: `Bearer ${token}` } })).json();
  assert.equal(api.text, 'signed in');
  assert.equal(await text(c), 'signed in');
  const anonymous = await ctxC.newPage();
  await anonymous.goto(`http://127.0.0.1:${port}/d/jwt-doc`);
  await anonymous.waitForFunction(() => window.tandem && window.tandem.view);
  await sleep(1500);
  assert.notEqual(await status(anonymous), 'connected');
  assert.equal(await text(anonymous), '');
  await ctxC.close();
  log('a page with a JWT edits as its subject; one without stays out');
} catch (e) {
  failed = true;
  console.error('FAILED:', e);
} finally {
  await browser.close().catch(() => {});
  if (server.running) await stopServer('SIGKILL');
  fs.rmSync(data, { recursive: true, force: true });
}
if (failed) process.exit(1);
log('browser test passed');
