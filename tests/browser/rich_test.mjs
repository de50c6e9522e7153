// Two real Chromium pages on one rich-text document, against a real `tandem serve` on loopback:
// the picker makes a rich document (ProseMirror) and a plain one (CodeMirror); both pages bold,
// type at the edges of the other's formatting, use the Markdown input rules, split and join
// paragraphs and list items, indent a list item, add a link (a script link is refused), go offline
// and reload; every time both end with the same ProseMirror document (their JSON), each editor
// shows what its engine holds, and the server's Markdown equals what either page exports.
//   node rich_test.mjs --tandem BIN --static DIST [--artifacts DIR]
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { arg, checkNode, freePort, launchChromium, log, sleep, tandemServer, waitFor, waitStatus, status } from './harness.mjs';

checkNode('the browser test');
const tandem = arg('--tandem');
const staticDir = arg('--static');
const artifacts = arg('--artifacts', path.join(os.tmpdir(), 'tandem-artifacts'));
assert.ok(tandem && fs.existsSync(tandem), '--tandem BIN');
assert.ok(staticDir && fs.existsSync(path.join(staticDir, 'index.html')), `--static DIR with index.html: ${staticDir}`);
fs.mkdirSync(artifacts, { recursive: true });

const data = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-rich-'));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = tandemServer({ tandem, port, data, site: staticDir });

const text = (page) => page.evaluate(() => window.tandem.text());
const json = (page) => page.evaluate(() => JSON.stringify(window.tandem.view.state.doc.toJSON()));
const engineJson = (page) => page.evaluate(() => JSON.stringify(window.tandem.rich.engineJson()));
const unsent = (page) => page.evaluate(() => window.tandem.client.unsent());
const api = async (doc, query = '') => (await fetch(`${base}/api/docs/${doc}${query}`)).json();

// Both editors show the same document, which is what their engines hold, and nothing is unsent.
async function converged(a, b, ms = 20000) {
  let last = null;
  await waitFor(async () => {
    const [ja, jb, ea, eb, ua, ub] = await Promise.all([json(a), json(b), engineJson(a), engineJson(b), unsent(a), unsent(b)]);
    last = { ja, jb, ea, eb, ua, ub };
    return ja === jb && ja === ea && jb === eb && ua === 0 && ub === 0;
  }, ms, 'both editors to show one document with nothing unsent').catch((e) => {
    throw new Error(`${e.message}: ${JSON.stringify(last, null, 1)}`);
  });
  return JSON.parse(await json(a));
}
// Places the cursor at text offset `from` (or selects [from, to)) and types.
async function typeAt(page, from, str, to = from) {
  await page.evaluate(([f, t]) => window.tandem.rich.select(f === 'end' ? window.tandem.text().length : f, t === 'end' ? window.tandem.text().length : t), [from, to]);
  if (str) await page.keyboard.type(str, { delay: 12 });
}
const find = async (page, s) => {
  const i = (await text(page)).indexOf(s);
  assert.ok(i >= 0, `"${s}" in ${JSON.stringify(await text(page))}`);
  return i;
};
// The paragraph-level nodes of a ProseMirror JSON document: [{type, attrs, text, marks: {text: [names]}}].
function blocks(doc) {
  return doc.content.map((n) => ({
    type: n.type, attrs: n.attrs ?? {}, text: (n.content ?? []).map((t) => t.text).join(''),
    runs: (n.content ?? []).filter((t) => t.marks).map((t) => [t.text, t.marks.map((m) => m.type + (m.attrs?.href ? `=${m.attrs.href}` : ''))]),
  }));
}
const marksOf = (doc, str) => {
  for (const b of blocks(doc)) for (const [t, m] of b.runs) if (t === str) return m;
  return null;
};

const browser = await launchChromium();
let failed = false;
try {
  await server.start();
  const ctxA = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const ctxB = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  for (const [p, n] of [[a, 'A'], [b, 'B']]) {
    p.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log(`page ${n}:`, m.text()); });
    p.on('pageerror', (e) => log(`page ${n} error:`, e.message));
  }

  // The picker: "New document" is rich text (ProseMirror); "New plain text" is CodeMirror.
  await a.goto(`${base}/`);
  assert.match(await a.textContent('[data-testid=doc-kinds]'), /rich text/);
  await a.click('[data-testid=new-plain-doc]');
  await a.waitForSelector('.cm-content');
  assert.equal(await a.evaluate(() => window.tandem.kind), 'plain');
  const plainDoc = await a.evaluate(() => window.tandem.doc.docId);
  await a.goto(`${base}/`);
  await a.click('[data-testid=new-doc]');
  await a.waitForSelector('.ProseMirror');
  assert.equal(new URL(a.url()).search, '', 'the kind is taken out of the address bar');
  const doc = await a.evaluate(() => window.tandem.doc.docId);
  await b.goto(`${base}/d/${doc}`);
  await b.waitForSelector('.ProseMirror');
  assert.equal(await b.evaluate(() => window.tandem.kind), 'rich', 'a document made rich opens rich by its plain link');
  await Promise.all([waitStatus(a, ['connected']), waitStatus(b, ['connected'])]);
  await Promise.all([a, b].map((p) => p.evaluate(() => navigator.serviceWorker.ready.then(() => true))));
  log('picker: plain and rich documents; both pages on', doc);

  // Bold through the shortcut; typing at its end joins it, at its start does not.
  await a.fill('[data-testid=name]', 'Ada');
  await b.fill('[data-testid=name]', 'Bo');
  await typeAt(a, 0, 'Hello world');
  await converged(a, b);
  const w = await find(a, 'world');
  await b.evaluate(() => {
    window.formatsSeen = [];
    window.tandem.doc.on('change', (patches, formats) => { if (formats) window.formatsSeen.push(formats); });
  });
  await typeAt(a, w, '', w + 5);
  await a.keyboard.press('Control+b');
  let d = await converged(a, b);
  assert.deepEqual(marksOf(d, 'world'), ['bold']);
  // B's 'change' event said where: the bold's characters.
  assert.deepEqual(await b.evaluate(() => window.formatsSeen), [[[w, w + 5]]]);
  await typeAt(b, 'end', '!!');
  await typeAt(a, w, 'big ');
  d = await converged(a, b);
  assert.deepEqual(marksOf(d, 'world!!'), ['bold'], `typed at the bold's end is bold: ${JSON.stringify(blocks(d))}`);
  assert.equal(blocks(d)[0].text, 'Hello big world!!');
  assert.equal(await b.getAttribute('[data-testid=tool-bold]', 'aria-pressed'), 'true', 'the toolbar shows bold at the cursor');
  log('bold, and typing at both of its edges');

  // Markdown input rules: a heading, a bullet list, an indented item, a numbered item, a quote, code.
  await typeAt(a, 'end', '');
  await a.keyboard.press('Enter');
  await a.keyboard.type('# Title', { delay: 12 });
  await converged(a, b);
  await typeAt(b, 'end', '');
  await b.keyboard.press('Enter');
  await b.keyboard.type('- one', { delay: 12 });
  await b.keyboard.press('Enter');
  await b.keyboard.type('two', { delay: 12 });
  await b.keyboard.press('Tab');
  await b.keyboard.press('Enter');
  await b.keyboard.press('Enter');  // an empty nested item goes up a level
  await b.keyboard.type('three', { delay: 12 });
  await b.keyboard.press('Enter');
  await b.keyboard.press('Enter');  // an empty item ends the list
  await b.keyboard.type('1. first', { delay: 12 });
  await b.keyboard.press('Enter');
  await b.keyboard.press('Enter');
  await b.keyboard.type('> said', { delay: 12 });
  await b.keyboard.press('Enter');
  await b.keyboard.press('Enter');
  await b.keyboard.type('```js code()', { delay: 12 });
  d = await converged(a, b);
  const shape = blocks(d).map((x) => [x.type, x.text, x.attrs.level ?? x.attrs.depth ?? x.attrs.language ?? null]);
  assert.deepEqual(shape, [
    ['paragraph', 'Hello big world!!', null], ['heading', 'Title', 1], ['bullet_item', 'one', 0], ['bullet_item', 'two', 1],
    ['bullet_item', 'three', 0], ['ordered_item', 'first', 0], ['blockquote', 'said', null], ['code_block', 'code()', 'js'],
  ], JSON.stringify(shape));
  const md = await a.evaluate(() => window.tandem.markdown());
  assert.match(md, /^# Title$/m);
  assert.match(md, /^- one\n {4}- two\n- three$/m);
  log('input rules: heading, nested list, numbered, quote, code block');

  // A link through the link editor; a script link is refused there (and by the engine).
  const one = await find(a, 'one');
  await typeAt(a, one, '', one + 3);
  await a.keyboard.press('Control+k');
  await a.fill('[data-testid=link-href]', 'javascript:alert(1)');
  await a.click('[data-testid=link-apply]');
  assert.match(await a.textContent('[data-testid=link-error]'), /http/);
  await a.fill('[data-testid=link-href]', 'https://example.com/one');
  await a.click('[data-testid=link-apply]');
  assert.ok(await a.isHidden('[data-testid=link-editor]'), 'the link editor closes');
  d = await converged(a, b);
  assert.deepEqual(marksOf(d, 'one'), ['link=https://example.com/one']);
  // Typed at the link's end: not linked (Peritext: links do not grow).
  await typeAt(b, one + 3, ' more');
  d = await converged(a, b);
  assert.equal(blocks(d)[2].text, 'one more');
  assert.deepEqual(marksOf(d, 'one'), ['link=https://example.com/one']);
  const refused = await a.evaluate(() => {
    try { window.tandem.doc.format(0, 2, 'link', 'javascript:alert(1)'); return 'taken'; } catch (e) { return e.message; }
  });
  assert.match(refused, /scheme 'javascript' is not allowed/);
  log('link editor: a link, not grown by typing at its end; a script link refused');

  // Concurrently offline: A splits the first paragraph inside the bold while B bolds across the
  // split and joins the heading into the paragraph above... on a copy: B joins "three" into "two".
  await Promise.all([ctxA.setOffline(true), ctxB.setOffline(true)]);
  await Promise.all([waitStatus(a, ['offline']), waitStatus(b, ['offline'])]);
  const wo = await find(a, 'world');
  await typeAt(a, wo + 2, '');
  await a.keyboard.press('Enter');
  const hb = await find(b, 'Hello');
  await typeAt(b, hb, '', hb + 'Hello big world'.length);
  await b.keyboard.press('Control+i');
  const th = await find(b, 'three');
  await typeAt(b, th, '');
  await b.keyboard.press('Backspace');  // a top-level item: it becomes a paragraph
  await b.keyboard.press('Backspace');  // then joins the item above
  await typeAt(a, 'end', ' done', 'end');
  assert.ok((await unsent(a)) > 0 && (await unsent(b)) > 0, 'offline edits are counted as unsent');
  await sleep(400);  // saved to IndexedDB 100 ms after the last edit
  await b.reload();
  await b.waitForFunction(() => window.tandem && window.tandem.view);
  assert.equal(await status(b), 'offline');
  assert.equal(await b.evaluate(() => window.tandem.kind), 'rich', 'reloaded offline, still rich');
  assert.ok((await text(b)).includes('twothree'), 'B kept its offline join over the reload');
  await Promise.all([ctxA.setOffline(false), ctxB.setOffline(false)]);
  await Promise.all([waitStatus(a, ['connected']), waitStatus(b, ['connected'])]);
  d = await converged(a, b);
  const after = blocks(d);
  assert.equal(after[0].text, 'Hello big wo', JSON.stringify(after));
  assert.equal(after[1].text, 'rld!!');
  // B's italic covered "Hello big world", across A's split: both halves carry it, and the bold.
  assert.deepEqual(after[1].runs, [['rld', ['bold', 'italic']], ['!!', ['bold']]], JSON.stringify(after[1]));
  assert.ok(after[0].runs.some(([t, m]) => t === 'wo' && m.includes('bold') && m.includes('italic')), JSON.stringify(after[0]));
  assert.ok(after.some((x) => x.text === 'twothree'), 'the join merged');
  assert.ok(after[after.length - 1].text.endsWith(' done'));
  log('offline split inside bold, italic across it, a join and a reload: converged');

  // Undo takes back only one's own edit.
  await typeAt(a, 'end', ' UNDO');
  await converged(a, b);
  await a.keyboard.press('Control+z');
  d = await converged(a, b);
  assert.ok(!(await text(a)).includes('UNDO'), 'undo took back A\'s typing');
  assert.ok((await text(a)).includes('twothree'), 'and left B\'s join');

  // The server's Markdown is what each page exports; the HTTP API lists the same spans.
  const server_md = (await api(doc, '?format=markdown')).markdown;
  assert.equal(await a.evaluate(() => window.tandem.markdown()), server_md);
  assert.equal(await b.evaluate(() => window.tandem.markdown()), server_md);
  const read = await api(doc);
  assert.equal(read.text, await text(a));
  assert.ok(read.spans.some((s) => s.marks.link === 'https://example.com/one'));
  fs.writeFileSync(path.join(artifacts, 'rich.md'), server_md);
  log('server Markdown equals both pages\' export:\n' + server_md);

  // A plain document formatted by someone else: its CodeMirror page says to reload.
  const c = await ctxA.newPage();
  await c.goto(`${base}/d/${plainDoc}`);
  await c.waitForSelector('.cm-content');
  await waitStatus(c, ['connected']);
  await c.click('.cm-content');
  await c.keyboard.type('plain words', { delay: 10 });
  await waitFor(async () => (await c.evaluate(() => window.tandem.client.unsent())) === 0, 10000, 'the plain text saved');
  const res = await fetch(`${base}/api/docs/${plainDoc}/edits`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent: 'api', edits: [{ at: 0, len: 5, mark: 'bold', value: true }] }),
  });
  assert.equal(res.status, 200, await res.text());
  await waitFor(async () => c.evaluate(() => !document.querySelector('[data-testid=now-rich]').hidden), 10000, 'the reload notice');
  await c.reload();
  await c.waitForSelector('.ProseMirror strong');
  assert.equal(await c.textContent('.ProseMirror strong'), 'plain');
  log('a formatted plain document asks its CodeMirror page to reload, and opens rich');

  const [pa, pb] = await Promise.all([a.screenshot(), b.screenshot()]);
  const shot = await ctxA.newPage();
  await shot.setViewportSize({ width: 1820, height: 620 });
  await shot.setContent(`<body style="margin:0;display:flex;gap:20px;background:#888">
    <img src="data:image/png;base64,${pa.toString('base64')}"><img src="data:image/png;base64,${pb.toString('base64')}"></body>`);
  await shot.screenshot({ path: path.join(artifacts, 'rich-editors.png') });
  log('screenshot saved to', path.join(artifacts, 'rich-editors.png'));
  await ctxA.close();
  await ctxB.close();
} catch (e) {
  failed = true;
  console.error('FAILED:', e);
} finally {
  await browser.close().catch(() => {});
  if (server.running) await server.stop('SIGKILL');
  fs.rmSync(data, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
