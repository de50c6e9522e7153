// The history panel in two real Chromium pages on one document, against a real `tandem serve`:
// a version saved from the panel, the slider showing the past read-only with its change marked,
// authors, compare; then one page restores the version while the other types offline: both
// converge on the restored text plus the other's typing, the restore is one session of its
// author, and undo in the restoring page takes it back. Also: the package's changes() (what a
// restore edits) over random texts, and the panel as a sheet at phone width.
//   node history_test.mjs --tandem BIN --static DIST [--artifacts DIR]
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { arg, checkNode, freePort, launchChromium, log, root, tandemServer, waitFor, waitStatus } from './harness.mjs';

checkNode('the history browser test');
const tandem = arg('--tandem');
const staticDir = arg('--static');
const artifacts = arg('--artifacts', path.join(os.tmpdir(), 'tandem-artifacts'));
assert.ok(tandem && fs.existsSync(tandem), '--tandem BIN');
assert.ok(staticDir && fs.existsSync(path.join(staticDir, 'index.html')), `--static DIR with index.html: ${staticDir}`);
fs.mkdirSync(artifacts, { recursive: true });

// changes(): applied to `from`, they make `to`; they never overlap; lines both share are kept.
const { changes } = await import(path.join(root, 'clients/js/src/history.js'));
{
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pieces = ['one\n', 'two\n', 'três\n', '😀', 'x', '\n', 'long line of text\n'];
  const make = () => Array.from({ length: Math.floor(rnd() * 14) }, () => pieces[Math.floor(rnd() * pieces.length)]).join('');
  const apply = (s, edits) => edits.reduceRight((t, e) => t.slice(0, e.from) + e.insert + t.slice(e.to), s);
  for (let i = 0; i < 2000; i++) {
    const [a, b] = [make(), make()];
    for (const max of [2000, 3, 0]) {
      const e = changes(a, b, max);
      assert.equal(apply(a, e), b, `changes(${JSON.stringify(a)}, ${JSON.stringify(b)}, ${max})`);
      for (let k = 1; k < e.length; k++) assert.ok(e[k].from >= e[k - 1].to, 'ascending, not overlapping');
    }
  }
  assert.deepEqual(changes('B: first draft\nsecond part\n', 'first draft\n'),
                   [{ from: 0, to: 3, insert: '' }, { from: 15, to: 27, insert: '' }]);
  assert.deepEqual(changes('same', 'same'), []);
  log('changes() makes every target from every text, keeping what both share');
}

const data = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-history-'));
const port = await freePort();
const server = tandemServer({ tandem, port, data, site: staticDir });
const doc = `history-${process.pid}`;
const url = `http://127.0.0.1:${port}/d/${doc}`;
const api = (tail, init) => fetch(`http://127.0.0.1:${port}/api/docs/${doc}${tail}`, init).then((r) => r.json());

const text = (page) => page.evaluate(() => window.tandem.text());
const shown = (page) => page.evaluate(() => window.tandem.view.state.doc.toString());
const unsent = (page) => page.evaluate(() => window.tandem.client.unsent());
async function settledOn(pages, want, ms = 20000) {
  await waitFor(async () => {
    for (const p of pages) {
      if ((await text(p)) !== want || (await shown(p)) !== want || (await unsent(p)) !== 0) return false;
    }
    return true;
  }, ms, `every page to show ${JSON.stringify(want)} with nothing unsent`);
}
async function typeAt(page, at, str) {
  await page.evaluate((pos) => {
    const v = window.tandem.view;
    v.dispatch({ selection: { anchor: pos === 'end' ? v.state.doc.length : pos } });
    v.focus();
  }, at);
  await page.keyboard.type(str, { delay: 10 });
}

const browser = await launchChromium();
let failed = false;
try {
  await server.start();
  const ctxA = await browser.newContext({ viewport: { width: 1000, height: 600 } });
  const ctxB = await browser.newContext({ viewport: { width: 1000, height: 600 } });
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  for (const [p, n] of [[a, 'A'], [b, 'B']]) {
    p.on('console', (m) => { if (m.type() === 'error') log(`page ${n}:`, m.text()); });
    p.on('pageerror', (e) => log(`page ${n} error:`, e.message));
  }
  await a.goto(url);
  await b.goto(url);
  await Promise.all([waitStatus(a, ['connected']), waitStatus(b, ['connected'])]);

  // A first draft, saved as a version from the panel.
  await typeAt(a, 0, 'first draft\n');
  await settledOn([a, b], 'first draft\n');
  await a.click('[data-testid=history-toggle]');
  await a.waitForSelector('[data-testid=history-panel]:not([hidden])');
  a.once('dialog', (d) => d.accept('sent to the client'));
  await a.click('[data-testid=save-version]');
  await a.waitForSelector('[data-testid=versions] .version');
  assert.match(await a.textContent('[data-testid=versions]'), /sent to the client/);
  const saved = await api('/versions');
  assert.equal(saved.versions.length, 1);
  assert.equal(saved.versions[0].events, 12);
  assert.equal(saved.versions[0].agent, await a.evaluate(() => window.tandem.agent));
  log('a version saved from the panel');

  // More writing by both.
  await typeAt(b, 'end', 'second part\n');
  await settledOn([a, b], 'first draft\nsecond part\n');
  await typeAt(a, 0, 'Title\n');
  await settledOn([a, b], 'Title\nfirst draft\nsecond part\n');

  // The slider: a version's point shows the text then, read-only, its change marked.
  await waitFor(async () => (await a.$$('[data-testid=sessions] .session')).length >= 2, 10000, 'the sessions listed');
  await a.click('[data-testid=versions] .version button');
  await a.waitForSelector('[data-testid=history-view]:not([hidden])');
  await waitFor(async () => (await a.textContent('[data-testid=history-text]')) === 'first draft\n', 10000, 'the version shown');
  assert.equal(await a.textContent('[data-testid=history-text] ins'), 'first draft\n');
  assert.match(await a.textContent('[data-testid=history-view-title]'), /sent to the client/);
  // (The panel refreshes a second after one's own edits reach the server: move to the slider's end
  // again until its points include them.)
  await waitFor(async () => {
    await a.$eval('[data-testid=history-slider]', (el) => { el.value = el.max; el.dispatchEvent(new Event('input')); });
    await new Promise((r) => setTimeout(r, 300));
    return (await a.textContent('[data-testid=history-text] ins').catch(() => '')) === 'Title\n';
  }, 15000, 'the last change marked at the slider\'s end').catch(async (e) => {
    const panel = await a.$$eval('[data-testid=sessions] .session', (xs) => xs.map((x) => `${x.dataset.to}:${x.textContent}`));
    const slider = await a.$eval('[data-testid=history-slider]', (el) => `${el.value}/${el.max}`);
    const marked = await a.$$eval('[data-testid=history-text] ins', (xs) => xs.map((x) => x.textContent));
    throw new Error(`${e.message}; the panel's sessions ${JSON.stringify(panel)}, slider ${slider}, marked ${JSON.stringify(marked)}, ` +
                    `the server's history ${JSON.stringify(await api('/history'))}`);
  });
  // Authors: each stretch coloured and named by its writer.
  await a.check('[data-testid=authors-toggle]');
  await waitFor(async () => (await a.textContent('[data-testid=history-text]')) === 'Title\nfirst draft\nsecond part\n' &&
                (await a.$$('[data-testid=history-text] .run.author')).length >= 2, 10000, 'the text by author');
  // (A stretch is cut where its edits were logged apart: the writers in order, repeats joined.)
  const titles = await a.$$eval('[data-testid=history-text] .run', (rs) => rs.map((r) => r.dataset.agent));
  const agents = await Promise.all([a, b].map((p) => p.evaluate(() => window.tandem.agent)));
  assert.deepEqual(titles.filter((t, i) => t !== titles[i - 1]), [agents[0], agents[1]]);
  // Compare: the version against now.
  await a.selectOption('[data-testid=compare-from]', '12');
  await a.selectOption('[data-testid=compare-to]', String(await api('/history').then((h) => h.events)));
  await a.click('[data-testid=compare]');
  await waitFor(async () => (await a.$$eval('[data-testid=history-text] ins', (xs) => xs.map((x) => x.textContent)))
    .join('|') === 'Title\n|second part\n', 10000, 'the comparison');
  log('slider, authors and compare show the past');

  // B goes offline and types; A restores the version meanwhile.
  await ctxB.setOffline(true);
  await waitStatus(b, ['offline', 'connecting']);
  await typeAt(b, 'end', 'typed offline');
  await a.click('[data-testid=versions] .version button');
  await waitFor(async () => (await a.textContent('[data-testid=history-text]')) === 'first draft\n', 10000, 'the version shown');
  await a.click('[data-testid=restore]');
  await waitFor(async () => (await text(a)) === 'first draft\n', 10000, 'the restore in A');
  assert.ok(await a.isHidden('[data-testid=history-view]'));
  await ctxB.setOffline(false);
  await settledOn([a, b], 'first draft\ntyped offline', 30000);
  log('restore and offline typing converge');
  const h = await api('/history');
  assert.equal(h.sessions[0].agents.length, 1);
  assert.ok([agents[0], agents[1]].includes(h.sessions[0].agents[0]));
  const restoreSession = h.sessions.find((s) => s.agents[0] === agents[0] && s.deleted === 18);
  assert.ok(restoreSession, `the restore is one session of A's: ${JSON.stringify(h.sessions)}`);
  // Undo in A takes the restore back (B's typing stays).
  await a.click('.cm-content');
  await a.keyboard.press('Control+z');
  await waitFor(async () => /^Title\nfirst draft\n(second part\ntyped offline|typed offlinesecond part\n)$/.test(await text(a)),
                10000, 'the undo in A');
  await settledOn([a, b], await text(a));
  log('undo takes the restore back');

  // A name already taken: said, nothing saved.
  a.once('dialog', (d) => d.accept('sent to the client'));
  await a.click('[data-testid=save-version]');
  await waitFor(async () => /already/.test(await a.textContent('[data-testid=history-message]')), 10000, 'the refusal said');
  assert.equal((await api('/versions')).versions.length, 1);

  // A rich document: its restore brings formatting back, as one step of ProseMirror's undo history.
  const rich = await ctxA.newPage();
  const richDoc = `${doc}-rich`;
  await rich.goto(`http://127.0.0.1:${port}/d/${richDoc}?kind=rich`);
  await waitStatus(rich, ['connected']);
  await rich.waitForFunction(() => window.tandem && window.tandem.kind === 'rich');
  // (Written by a backend through the HTTP API: the page shows it as others' edits.)
  const richApi = (tail, init) => fetch(`http://127.0.0.1:${port}/api/docs/${richDoc}${tail}`, init).then((r) => r.json());
  const edit = (edits) => richApi('/edits', { method: 'POST', body: JSON.stringify({ agent: 'backend', edits }) });
  await edit([{ at: 0, insert: 'bold words' }, { at: 0, len: 4, mark: 'bold', value: true }]);
  const point = (await richApi('')).events;
  await richApi('/versions', { method: 'POST', body: JSON.stringify({ name: 'bold' }) });
  await edit([{ at: 0, len: 4, mark: 'bold', value: false }, { at: 10, insert: ' and more' }]);
  await waitFor(async () => (await rich.evaluate(() => window.tandem.view.state.doc.textContent)) === 'bold words and more', 10000,
                'the rich change shown');
  await rich.click('[data-testid=history-toggle]');
  await rich.waitForSelector('[data-testid=versions] .version');
  await rich.click('[data-testid=versions] .version button');
  await rich.waitForSelector('[data-testid=history-view]:not([hidden])');
  await rich.click('[data-testid=restore]');
  await waitFor(async () => {
    const now = await richApi('');
    const [sp] = now.spans;
    return now.text === 'bold words' && now.spans.length === 1 && sp.from === 0 && sp.to === 4 && sp.marks.bold === true;
  }, 10000, 'the rich version restored with its bold');
  await waitFor(async () => (await rich.evaluate(() => window.tandem.text())) === 'bold words', 10000, 'the editor to show it');
  assert.ok(point > 0);
  assert.equal(await rich.textContent('.ProseMirror strong'), 'bold');
  await rich.click('.ProseMirror');
  await rich.keyboard.press('Control+z');
  await waitFor(async () => (await richApi('')).text === 'bold words and more', 10000, 'the rich restore undone');
  log('a rich document is restored with its formatting, and undo takes it back');

  // Phone width: the panel is a sheet at the bottom.
  const phone = await browser.newContext({ viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  await p.goto(url);
  await waitStatus(p, ['connected']);
  await p.click('[data-testid=history-toggle]');
  const box = await p.locator('[data-testid=history-panel]').boundingBox();
  assert.ok(box && box.width >= 380 && box.y > 300 && box.y + box.height <= 761, `a bottom sheet: ${JSON.stringify(box)}`);
  await p.screenshot({ path: path.join(artifacts, 'history-phone.png') });
  await a.screenshot({ path: path.join(artifacts, 'history.png') });
  log('at phone width the panel is a bottom sheet');
} catch (e) {
  failed = true;
  console.error('FAILED:', e);
} finally {
  await browser.close().catch(() => {});
  if (server.running) await server.stop('SIGKILL');
  fs.rmSync(data, { recursive: true, force: true });
}
if (failed) process.exit(1);
log('history browser test passed');
