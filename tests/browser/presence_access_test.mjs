// What surrounds syncing in the web editor, in real Chromium against a real `tandem serve`:
// another person's selection is painted in their colour; name labels show when a caret moves and
// on hover, then fade; the people present get distinct colours; and on a server with auth a page
// says what is true and locks the editor when it cannot write (read-only token, no token, a token
// for other documents, a token that expires while open), names the person after the token, and
// takes a fresh token without a reload. Also the home page's list of the server's documents, a
// bad document name, "Copy link", and the picker at phone width.
//   node presence_access_test.mjs --tandem BIN --static DIST [--artifacts DIR]
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { arg, checkNode, freePorts, launchChromium, log, sleep, tandemServer, waitFor, waitStatus } from './harness.mjs';

checkNode('the browser test');
const tandem = arg('--tandem');
const staticDir = arg('--static');
const artifacts = arg('--artifacts', path.join(os.tmpdir(), 'tandem-artifacts'));
assert.ok(tandem && fs.existsSync(tandem), '--tandem BIN');
assert.ok(staticDir && fs.existsSync(path.join(staticDir, 'index.html')), `--static DIR with index.html: ${staticDir}`);
fs.mkdirSync(artifacts, { recursive: true });

const secret = 'presence-test-secret';
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-presence-'));
const [openPort, authPort] = await freePorts(2);
const open = tandemServer({ tandem, port: openPort, data: path.join(data, 'open'), site: staticDir });
const auth = tandemServer({ tandem, port: authPort, data: path.join(data, 'auth'), site: staticDir });
const token = (sub, { doc = '*', mode = 'write', ttl = 600 } = {}) =>
  execFileSync(tandem, ['token', '--secret', secret, '--sub', sub, '--doc', doc, '--mode', mode, '--ttl', String(ttl)],
               { encoding: 'utf8' }).trim();

const access = (page) => page.evaluate(() => {
  const a = document.querySelector('[data-testid=access]');
  return a && !a.hidden ? a.textContent : '';
});
const text = (page) => page.evaluate(() => window.tandem.text());
// Typing with the keyboard: what a locked editor must not take.
async function tryTyping(page, str) {
  await page.click('.cm-content');
  await page.keyboard.type(str, { delay: 10 });
}
// The computed background colour's alpha (0: nothing painted).
const alphaOf = (css) => {
  const m = /rgba?\(([^)]+)\)/.exec(css);
  if (!m) return 0;
  const parts = m[1].split(',').map((x) => Number(x.trim()));
  return parts.length === 4 ? parts[3] : 1;
};

const browser = await launchChromium();
let failed = false;
const pages = [];
async function newPage(width = 900) {
  const ctx = await browser.newContext({ viewport: { width, height: 600 } });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: `http://127.0.0.1:${openPort}` });
  const page = await ctx.newPage();
  const n = pages.length;
  page.on('pageerror', (e) => log(`page ${n} error:`, e.message));
  pages.push(page);
  return page;
}
try {
  await open.start();
  await auth.start(['--auth-secret', secret]);

  // ---- Presence on an open server -------------------------------------------------------------
  const doc = `presence-${process.pid}`;
  const url = `http://127.0.0.1:${openPort}/d/${doc}`;
  const [alice, carol, bob] = [await newPage(), await newPage(), await newPage()];
  for (const [p, name] of [[alice, 'Alice'], [carol, 'Carol on phone'], [bob, 'Bob']]) {
    await p.goto(url);
    await waitStatus(p, ['connected']);
    await p.fill('[data-testid=name]', name);
  }
  await alice.evaluate(() => window.tandem.view.dispatch({ changes: { from: 0, insert: '- Buy milk\n- Bake bread\n' } }));
  await waitFor(async () => (await text(bob)) === '- Buy milk\n- Bake bread\n', 10000, 'the text at Bob');
  // Three people, three different colours, the same in every page.
  const colors = async (p) => p.evaluate(() => [window.tandem.doc.color(), ...window.tandem.doc.peers().map((x) => x.color)]);
  await waitFor(async () => (await colors(bob)).length === 3 && new Set(await colors(bob)).size === 3, 10000,
                'three distinct colours at Bob');
  const mine = async (p) => p.evaluate(() => window.tandem.doc.color());
  const seenByBob = await bob.evaluate(() => Object.fromEntries(window.tandem.doc.peers().map((x) => [x.name, x.color])));
  assert.equal(seenByBob.Alice, await mine(alice));
  assert.equal(seenByBob['Carol on phone'], await mine(carol));
  log('colours:', JSON.stringify(await colors(bob)));

  // Alice selects the second line: Bob sees it painted in her colour.
  await alice.evaluate(() => {
    const v = window.tandem.view;
    v.focus();
    v.dispatch({ selection: { anchor: 11, head: 23 } });
  });
  const sel = await waitFor(() => bob.evaluate(() => {
    const marks = [...document.querySelectorAll('.cm-remote-selection')];
    return marks.length ? { text: marks.map((m) => m.textContent).join(''), bg: getComputedStyle(marks[0]).backgroundColor } : null;
  }), 10000, 'Alice\'s selection at Bob');
  assert.equal(sel.text, '- Bake bread');
  assert.ok(alphaOf(sel.bg) > 0.1, `the selection is painted (background ${sel.bg})`);
  const want = await mine(alice);
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(want.slice(i, i + 2), 16));
  assert.ok(sel.bg.startsWith(`rgba(${r}, ${g}, ${b}`), `in Alice's colour ${want}: ${sel.bg}`);
  await bob.screenshot({ path: path.join(artifacts, 'remote-selection.png') });

  // Her name label shows while her caret moves, fades after a few seconds, and shows on hover.
  const labelOpacity = () => bob.evaluate(() => {
    const l = [...document.querySelectorAll('[data-testid=remote-cursor]')].find((x) => x.textContent === 'Alice');
    return l ? Number(getComputedStyle(l).opacity) : -1;
  });
  await alice.evaluate(() => window.tandem.view.dispatch({ selection: { anchor: 2 } }));
  await waitFor(async () => (await labelOpacity()) === 1, 5000, 'Alice\'s label to show after her caret moved');
  await waitFor(async () => (await labelOpacity()) === 0, 8000, 'Alice\'s label to fade');
  const caret = bob.locator('.cm-remote-caret', { has: bob.locator('[data-testid=remote-cursor]', { hasText: 'Alice' }) });
  await caret.hover({ force: true });
  await waitFor(async () => (await labelOpacity()) === 1, 3000, 'Alice\'s label on hover');
  await bob.mouse.move(5, 5);
  log('selection painted, labels fade and show on hover');

  // "Copy link": the document's address, never a token.
  await bob.click('[data-testid=copy-link]');
  assert.equal(await bob.evaluate(() => navigator.clipboard.readText()), url);
  assert.equal(await bob.textContent('[data-testid=copy-link]'), 'Link copied');

  // The home page lists the server's documents; a bad name says so and leads back.
  const home = await newPage(420);
  await home.goto(`http://127.0.0.1:${openPort}/`);
  await waitFor(() => home.evaluate((d) => [...document.querySelectorAll('[data-testid=server-docs] a')].some((a) => a.textContent === d), doc),
                10000, 'the document in the server\'s list');
  // At phone width the buttons stay on one line and the field shows its whole placeholder.
  for (const sel of ['[data-testid=new-doc]', 'form button[type=submit]']) {
    const lines = await home.evaluate((s) => {
      const e = document.querySelector(s);
      return e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight || '20');
    }, sel);
    assert.ok(lines < 2, `${sel} on one line at 420 px`);
  }
  const field = await home.evaluate(() => {
    const i = document.querySelector('[data-testid=doc-name]');
    const c = document.createElement('canvas').getContext('2d');
    c.font = getComputedStyle(i).font;
    return { need: c.measureText(i.placeholder).width, have: i.clientWidth };
  });
  assert.ok(field.need < field.have, `the placeholder fits (${JSON.stringify(field)})`);
  assert.ok(await home.evaluate(() => document.documentElement.scrollWidth) <= 420, 'no sideways scrolling at 420 px');
  await home.goto(`http://127.0.0.1:${openPort}/d/bad%20name`);
  assert.match(await home.textContent('[data-testid=bad-doc]'), /"bad name" is not a document name/);
  await home.click('[data-testid=back-home]');
  await waitFor(() => home.evaluate(() => location.pathname === '/'), 5000, 'back home');
  log('home page list, bad name, copy link, phone width');

  // ---- Access on a server with auth ----------------------------------------------------------
  const base = `http://127.0.0.1:${authPort}/d/notes-${process.pid}`;
  const writer = await newPage();
  await writer.goto(`${base}?token=${token('bob')}`);
  await waitStatus(writer, ['connected']);
  assert.equal(await writer.inputValue('[data-testid=name]'), 'bob', 'the name defaults to the token\'s subject');
  assert.equal(await access(writer), '');
  await tryTyping(writer, 'written by bob');
  await waitFor(async () => (await writer.textContent('[data-testid=unsent]')) === 'all saved', 10000, 'bob\'s edit saved');

  // Read-only: says so, and typing changes nothing.
  const reader = await newPage();
  await reader.goto(`${base}?token=${token('rita', { mode: 'read' })}`);
  await waitStatus(reader, ['connected']);
  await waitFor(async () => (await access(reader)) === 'read-only', 10000, 'read-only shown');
  await waitFor(async () => (await text(reader)) === 'written by bob', 10000, 'the reader sees the text');
  await tryTyping(reader, 'should not go in');
  await sleep(300);
  assert.equal(await text(reader), 'written by bob');
  assert.equal(await reader.textContent('[data-testid=unsent]'), 'all saved');

  // No token, and a token for other documents: refused, said plainly, locked.
  const nobody = await newPage();
  await nobody.goto(base);
  await waitFor(async () => (await access(nobody)) === 'sign in to open this document', 10000, 'no token shown');
  await tryTyping(nobody, 'lost words');
  assert.equal(await text(nobody), '');
  const stranger = await newPage();
  await stranger.goto(`${base}?token=${token('sam', { doc: 'other-*' })}`);
  await waitFor(async () => (await access(stranger)) === 'not allowed to open this document', 10000, 'forbidden shown');

  // A token that expires while the page is open: said, and locked.
  const brief = await newPage();
  await brief.goto(`${base}?token=${token('tim', { ttl: 3 })}`);
  await waitStatus(brief, ['connected']);
  await waitFor(async () => (await access(brief)) === 'your access expired — reload or sign in', 10000, 'expiry shown');
  await tryTyping(brief, 'too late');
  assert.equal(await text(brief), 'written by bob');
  // ... and the app hands it a fresh token: it is back without a reload, and can write.
  await brief.evaluate((t) => window.tandem.doc.setToken(t), token('tim'));
  await waitStatus(brief, ['connected']);
  await waitFor(async () => (await access(brief)) === '', 10000, 'access back');
  await tryTyping(brief, ' and tim');
  await waitFor(async () => (await text(writer)).includes(' and tim'), 10000, 'tim\'s edit at bob');
  // A fresh token handed over before the old one runs out keeps the page writing past it.
  const renewed = await newPage();
  await renewed.goto(`${base}?token=${token('una', { ttl: 3 })}`);
  await waitStatus(renewed, ['connected']);
  await renewed.evaluate((t) => window.tandem.doc.setToken(t), token('una'));
  await sleep(4000);
  assert.equal(await access(renewed), '');
  await waitStatus(renewed, ['connected']);
  log('read-only, no token, forbidden, expired, renewed');
  await nobody.screenshot({ path: path.join(artifacts, 'access-no-token.png') });
} catch (e) {
  failed = true;
  console.error(e);
  for (let i = 0; i < pages.length; ++i) {
    await pages[i].screenshot({ path: path.join(artifacts, `presence-failure-${i}.png`) }).catch(() => {});
  }
} finally {
  await browser.close();
  if (open.running) await open.stop('SIGTERM');
  if (auth.running) await auth.stop('SIGTERM');
  fs.rmSync(data, { recursive: true, force: true });
}
if (failed) process.exit(1);
log('ok');
