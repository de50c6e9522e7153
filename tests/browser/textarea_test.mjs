// The JavaScript client package (clients/js) in a second, deliberately small page: a plain
// <textarea> bound through @tandem/client's API (tests/browser/textarea), editing one document
// with the web editor in real Chromium against a real `tandem serve`, both ways: typing in each
// (emoji, CJK, a combining mark), typing in both at once, replacing a selection, deleting an
// emoji with Backspace; every time both show the same text with nothing unsent, and the server
// stores it. The web editor runs at phone width (420 px): the editor keeps the width, the list of
// who is here folds behind a button, the name field stays in the header, and the textarea's caret
// on the first line has its name label inside the editor.
//   node textarea_test.mjs --tandem BIN --static DIST [--engine tandem-engine.mjs] [--artifacts DIR]
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, checkNode, freePort, launchChromium, log, requireEditor, root, tandemServer, waitFor, waitStatus, status } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
checkNode('the browser test');
const esbuild = requireEditor('esbuild');

const tandem = arg('--tandem');
const staticDir = arg('--static');
const engine = path.resolve(arg('--engine', staticDir ? path.join(staticDir, '../obj/tandem-engine.mjs') : ''));
const artifacts = arg('--artifacts', path.join(os.tmpdir(), 'tandem-artifacts'));
assert.ok(tandem && fs.existsSync(tandem), '--tandem BIN');
assert.ok(staticDir && fs.existsSync(path.join(staticDir, 'index.html')), `--static DIR with index.html (run web-editor/build.sh): ${staticDir}`);
assert.ok(fs.existsSync(engine), `the engine (--engine, default DIST/../obj/tandem-engine.mjs): ${engine}`);
fs.mkdirSync(artifacts, { recursive: true });

// What the server serves: the web editor as built, plus the textarea page bundled now with the
// package as the web editor resolves it (web-editor/node_modules/@tandem/client -> clients/js).
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-textarea-'));
const site = path.join(data, 'site');
fs.cpSync(staticDir, site, { recursive: true });
fs.mkdirSync(path.join(site, 'textarea'));
fs.copyFileSync(path.join(here, 'textarea/index.html'), path.join(site, 'textarea/index.html'));
await esbuild.build({
  entryPoints: [path.join(here, 'textarea/main.js')], bundle: true, format: 'esm', platform: 'browser',
  alias: { 'tandem-engine': engine }, nodePaths: [path.join(root, 'web-editor/node_modules')],
  preserveSymlinks: true, outfile: path.join(site, 'textarea/app.js'), logLevel: 'warning',
});
log('textarea page bundled');

const port = await freePort();
const server = tandemServer({ tandem, port, data, site });
const startServer = (extra) => server.start(extra);
const stopServer = (signal) => server.stop(signal);

// The editor's replica, the editor's view, the textarea page's document and its <textarea> all
// hold the same text, and neither page has anything unsent.
async function converged(ed, ta, ms = 20000) {
  let last;
  await waitFor(async () => {
    last = await Promise.all([
      ed.evaluate(() => window.tandem.text()), ed.evaluate(() => window.tandem.view.state.doc.toString()),
      ta.evaluate(() => window.tandem.text()), ta.inputValue('textarea'),
      ed.evaluate(() => window.tandem.client.unsent()), ta.evaluate(() => window.tandem.unsent())]);
    const [a, b, c, d, ua, ub] = last;
    return a === b && b === c && c === d && ua === 0 && ub === 0;
  }, ms, 'the editor and the textarea to converge with nothing unsent').catch((e) => {
    throw new Error(`${e.message}: ${JSON.stringify(last)}`);
  });
  return last[0];
}
async function typeInEditor(page, where, str) {
  await page.evaluate((pos) => {
    const v = window.tandem.view;
    const at = pos === 'end' ? v.state.doc.length : Math.min(pos, v.state.doc.length);
    v.dispatch({ selection: { anchor: at } });
    v.focus();
  }, where);
  await page.keyboard.type(str, { delay: 15 });
}
async function typeInTextarea(page, where, str) {
  await page.evaluate((pos) => {
    const t = document.querySelector('textarea');
    const at = pos === 'end' ? t.value.length : Math.min(pos, t.value.length);
    t.focus();
    t.setSelectionRange(at, at);
  }, where);
  await page.keyboard.type(str, { delay: 15 });
}
function exported(doc) {
  return execFileSync(tandem, ['export', '--db', path.join(data, 'tandem.db'), '--doc', doc], { encoding: 'utf8' });
}

const browser = await launchChromium();
const doc = `textarea-${process.pid}`;
let failed = false;
try {
  await startServer();
  // The web editor at phone width, the textarea page on a desktop-sized window.
  const ctxE = await browser.newContext({ viewport: { width: 420, height: 720 } });
  const ctxT = await browser.newContext({ viewport: { width: 800, height: 500 } });
  const ed = await ctxE.newPage();
  const ta = await ctxT.newPage();
  for (const [p, n] of [[ed, 'editor'], [ta, 'textarea']]) {
    p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log(`${n}:`, m.text()); });
    p.on('pageerror', (e) => log(`${n} error:`, e.message));
  }
  await ed.goto(`http://127.0.0.1:${port}/d/${doc}`);
  await ta.goto(`http://127.0.0.1:${port}/textarea/index.html?doc=${doc}&name=Tex`);
  await Promise.all([waitStatus(ed, ['connected']), waitStatus(ta, ['connected'])]);
  await ed.fill('[data-testid=name]', 'Ed');
  log('both connected');

  // The textarea types, the editor shows it; the editor types, the textarea shows it.
  const t1 = 'From the textarea: 你好 👋\n';
  await typeInTextarea(ta, 0, t1);
  let t = await converged(ed, ta);
  assert.equal(t, t1);
  const e1 = 'From CodeMirror: 東京 🚀 café e\u0301\n';
  await typeInEditor(ed, 'end', e1);
  t = await converged(ed, ta);
  assert.equal(t, t1 + e1);
  log('each way:', JSON.stringify(t));

  // Both at once, at the two ends.
  const t2 = 'textarea again 🎉 ', e2 = 'editor again 한국어 ';
  await Promise.all([typeInTextarea(ta, 0, t2), typeInEditor(ed, 'end', e2)]);
  t = await converged(ed, ta);
  assert.equal(t, t2 + t1 + e1 + e2);
  log('both at once:', JSON.stringify(t));

  // A selection replaced in the textarea, an emoji deleted there with Backspace, and the editor
  // deleting a CJK word: each shows up on the other side.
  const from = t.indexOf('你好');
  await ta.evaluate((at) => {
    const area = document.querySelector('textarea');
    area.focus();
    area.setSelectionRange(at, at + 2);
  }, from);
  await ta.keyboard.type('こんにちは', { delay: 15 });
  const wave = t.indexOf('👋') + 2;  // after the emoji (two UTF-16 units)
  await ta.evaluate((at) => document.querySelector('textarea').setSelectionRange(at + 3, at + 3), wave);  // '你好' became 5 characters
  await ta.keyboard.press('Backspace');
  let want = t.replace('你好', 'こんにちは').replace('👋', '');
  t = await converged(ed, ta);
  assert.equal(t, want);
  const tokyo = t.indexOf('東京');
  await ed.evaluate((at) => {
    const v = window.tandem.view;
    v.dispatch({ selection: { anchor: at, head: at + 2 } });
    v.focus();
  }, tokyo);
  await ed.keyboard.press('Delete');
  want = want.replace('東京', '');
  t = await converged(ed, ta);
  assert.equal(t, want);
  log('replace and delete converged:', JSON.stringify(t));

  // Phone width: nothing runs off the screen; the editor keeps the width; the list of who is here
  // is folded behind a button until asked for.
  const box = (sel) => ed.locator(sel).boundingBox();
  const width = 420;
  assert.ok(await ed.evaluate(() => document.documentElement.scrollWidth) <= width, 'no sideways scrolling at 420 px');
  for (const sel of ['[data-testid=name]', '[data-testid=status]', '[data-testid=people-toggle]', 'header']) {
    const b = await box(sel);
    assert.ok(b && b.x >= 0 && b.x + b.width <= width + 0.5, `${sel} inside the screen: ${JSON.stringify(b)}`);
  }
  const editorBox = await box('.cm-editor');
  assert.ok(editorBox.width >= width - 2, `the editor keeps the width: ${JSON.stringify(editorBox)}`);
  assert.equal(await ed.locator('[data-testid=people]').isVisible(), false, 'the list of who is here is folded away');
  assert.equal(await ed.textContent('[data-testid=people-count]'), '2');
  await ed.click('[data-testid=people-toggle]');
  assert.equal(await ed.locator('[data-testid=people]').isVisible(), true, 'the button shows the list');
  const list = await box('[data-testid=people]');
  assert.ok(list.x >= 0 && list.x + list.width <= width + 0.5, `the list inside the screen: ${JSON.stringify(list)}`);
  assert.match(await ed.textContent('[data-testid=people]'), /Tex/);
  await ed.click('[data-testid=people-toggle]');
  assert.equal(await ed.locator('[data-testid=people]').isVisible(), false, 'and folds it again');
  log('phone width: the editor keeps the width, the people list folds, the name field stays in the header');

  // The textarea's caret on the first line: the editor draws its label inside the editor, not
  // cut off above it.
  await ta.evaluate(() => {
    const area = document.querySelector('textarea');
    area.focus();
    area.setSelectionRange(3, 3);
  });
  await ed.evaluate(() => window.tandem.view.scrollDOM.scrollTo(0, 0));
  const label = ed.locator('[data-testid=remote-cursor]', { hasText: 'Tex' });
  await waitFor(async () => (await label.count()) === 1 && await ed.evaluate(() => {
    const caret = document.querySelector('.cm-remote-caret');
    return caret && window.tandem.view.posAtDOM(caret) === 3;
  }), 10000, "the editor to show the textarea's caret on the first line");
  const [lb, scroller] = [await label.boundingBox(), await box('.cm-scroller')];
  assert.ok(lb.y >= scroller.y && lb.y + lb.height <= scroller.y + scroller.height,
            `the label on the first line is inside the editor: label ${JSON.stringify(lb)}, editor ${JSON.stringify(scroller)}`);
  assert.ok(lb.x >= scroller.x - 0.5 && lb.x + lb.width <= scroller.x + scroller.width + 0.5, `and not cut off sideways: ${JSON.stringify([lb, scroller])}`);
  await ed.screenshot({ path: path.join(artifacts, 'editor-phone-first-line.png') });
  // On another line it stays above the caret, as before.
  await ta.evaluate((at) => document.querySelector('textarea').setSelectionRange(at, at), t.indexOf('\n') + 3);
  await waitFor(async () => ed.evaluate(() => {
    const caret = document.querySelector('.cm-remote-caret');
    const view = window.tandem.view;
    return caret && !caret.matches('.cm-remote-caret-top') && view.state.doc.lineAt(view.posAtDOM(caret)).number === 2;
  }),
                10000, 'the caret to move to the second line');
  const [lb2, caret2] = [await label.boundingBox(), await box('.cm-remote-caret')];
  assert.ok(lb2.y + lb2.height <= caret2.y + 1, `on the second line the label is above the caret: ${JSON.stringify([lb2, caret2])}`);
  await ed.screenshot({ path: path.join(artifacts, 'editor-phone-width.png') });
  log('caret labels readable; screenshots editor-phone-first-line.png, editor-phone-width.png in', artifacts);

  // The textarea page reloads: its text comes back (IndexedDB, then the server), still in step.
  await ta.reload();
  await ta.waitForFunction(() => window.tandem && window.tandem.doc);
  await waitStatus(ta, ['connected']);
  await typeInTextarea(ta, 'end', ' — after a reload ✓');
  t = await converged(ed, ta);
  assert.ok(t.endsWith(' — after a reload ✓'), JSON.stringify(t));

  // Rich text through the package: the textarea page makes the first two UTF-16 units bold (the
  // handle's format call, protocol 2); it is acknowledged, the handle reads it back, the server's
  // HTTP API lists it (in code points), and the web editor, which shows plain text, stays in step.
  await ta.evaluate(() => window.tandem.doc.format(0, 2, 'bold'));
  await waitFor(async () => ta.evaluate(() => window.tandem.doc.unsent() === 0), 10000, 'the bold to be acknowledged');
  assert.deepEqual(await ta.evaluate(() => window.tandem.doc.spans()), [{ from: 0, to: 2, marks: { bold: true } }]);
  const api = await (await fetch(`http://127.0.0.1:${port}/api/docs/${doc}`)).json();
  assert.deepEqual(api.spans, [{ from: 0, to: Array.from(t.slice(0, 2)).length, marks: { bold: true } }]);
  await typeInTextarea(ta, 'end', '!');
  t = await converged(ed, ta);
  assert.ok(t.endsWith('✓!'), JSON.stringify(t));
  log('a bold made through the package reached the server; both pages still in step');

  const ended = await stopServer('SIGTERM');
  assert.equal(ended.code, 0);
  assert.equal(exported(doc), t);
  log('the stored text equals both pages');
} catch (e) {
  failed = true;
  console.error('FAILED:', e);
} finally {
  await browser.close().catch(() => {});
  if (server.running) await stopServer('SIGKILL');
  fs.rmSync(data, { recursive: true, force: true });
}
if (failed) process.exit(1);
log('textarea test passed');
