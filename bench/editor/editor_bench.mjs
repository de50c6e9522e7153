// The web editor's responsiveness in headless Chromium against a real `tandem serve`:
//  - applying a remote 1 MB insert (engine merge + CodeMirror update + the next frame painted);
//  - opening a 100,000-line document (navigation to text shown and connected);
//  - a local 1 MB paste (engine insert + CodeMirror + the next frame).
// Prints a table of the median and range over --runs runs.
//   node bench/editor/editor_bench.mjs --tandem build/tools/tandem/tandem --static build/web-editor/dist [--runs 5]
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { chromium } = createRequire(path.join(root, 'web-editor/package.json'))('playwright-core');
const arg = (n, d) => { const i = process.argv.indexOf(n); return i > 0 ? process.argv[i + 1] : d; };
const tandem = arg('--tandem', path.join(root, 'build/tools/tandem/tandem'));
const staticDir = arg('--static', path.join(root, 'build/web-editor/dist'));
const runs = Number(arg('--runs', '5'));

const port = await new Promise((r) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-editor-bench-'));
const server = spawn(tandem, ['serve', '--port', String(port), '--data', data, '--static', staticDir, '--quiet', '1'], { stdio: 'ignore' });
for (let i = 0; ; ++i) {
  try { if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break; } catch { /* not yet */ }
  if (i > 200) throw new Error('server did not start');
  await new Promise((r) => setTimeout(r, 50));
}
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'],
});
const base = `http://127.0.0.1:${port}/d`;
const open = async (doc, lines = 0) => {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 700 }, serviceWorkers: 'block' });
  const page = await ctx.newPage();
  const t0 = Date.now();
  await page.goto(`${base}/${doc}`);
  await page.waitForFunction((n) => window.tandem && document.querySelector('[data-testid=status]').textContent === 'connected' &&
                             window.tandem.view.state.doc.lines >= n, lines, { timeout: 60000, polling: 5 });
  return { ctx, page, ms: Date.now() - t0 };
};
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const results = { remote: [], paste: [], load: [] };

// A 100,000-line document, made once through the editor and synced to the server.
const lines = 100000;
{
  const { ctx, page } = await open('lines');
  await page.evaluate((n) => {
    const t = Array.from({ length: n }, (_, i) => `line ${i} of the document`).join('\n');
    window.tandem.view.dispatch({ changes: { from: 0, insert: t } });
  }, lines);
  await page.waitForFunction(() => window.tandem.client.unsent() === 0, null, { timeout: 60000 });
  await ctx.close();
}
for (let r = 0; r < runs; ++r) {
  const { ctx, page, ms } = await open('lines', lines);
  const n = await page.evaluate(() => window.tandem.view.state.doc.lines);
  if (n !== lines) throw new Error(`opened ${n} lines, expected ${lines}`);
  results.load.push(ms);
  await ctx.close();
}
for (let r = 0; r < runs; ++r) {
  const { ctx, page } = await open(`big-${r}`);
  const m = await page.evaluate(async () => {
    const { engine, client, view } = window.tandem;
    const chunk = 'The quick brown fox jumps over the lazy dog. 0123456789\n';
    const big = chunk.repeat(Math.ceil(1e6 / chunk.length)).slice(0, 1e6);
    const other = new engine.Replica('bench-remote');
    other.insert16(0, big);
    const bytes = other.ownOpsSince(0, 1e7, 1 << 30)[0];
    const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    let t0 = performance.now();
    client.receive([2, 0, bytes]);
    await frame();
    const remote = performance.now() - t0;
    if (view.state.doc.length !== 1e6) throw new Error('remote insert not shown');
    t0 = performance.now();
    view.dispatch({ changes: { from: 0, insert: big }, userEvent: 'input.paste' });
    await frame();
    const paste = performance.now() - t0;
    return { remote, paste };
  });
  results.remote.push(m.remote);
  results.paste.push(m.paste);
  await ctx.close();
}
const version = browser.version();
await browser.close();
server.kill('SIGTERM');
fs.rmSync(data, { recursive: true, force: true });
const row = (name, xs) => `| ${name} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)} |`;
console.log(`Chromium ${version}, ${runs} runs each\n`);
console.log('| operation | median ms | range ms |\n|---|--:|--:|');
console.log(row('apply a remote 1 MB insert (merge, editor update, next frame)', results.remote));
console.log(row('local 1 MB paste (engine insert, editor update, next frame)', results.paste));
console.log(row(`open a ${lines.toLocaleString('en')}-line document (navigation to connected, text shown)`, results.load));
