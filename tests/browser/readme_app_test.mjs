// The README's JavaScript app, built exactly as the README says: its `sh` block run in an empty
// folder (with /path/to/tandem made this checkout) and its `js` block as app.js (with the server
// address made the test server's), then the page opened in Chromium beside the web editor on the
// same document: typing in either shows in the other, and the server stores it.
//   node readme_app_test.mjs --tandem BIN --static DIST [--artifacts DIR]
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { arg, checkNode, freePorts, launchChromium, log, root, tandemServer, waitFor, waitStatus } from './harness.mjs';

checkNode('the browser test');
const tandem = arg('--tandem');
const staticDir = arg('--static');
const artifacts = arg('--artifacts', path.join(os.tmpdir(), 'tandem-artifacts'));
assert.ok(tandem && fs.existsSync(tandem), '--tandem BIN');
assert.ok(staticDir && fs.existsSync(path.join(staticDir, 'index.html')), `--static DIR with index.html: ${staticDir}`);
assert.ok(fs.existsSync(path.join(root, 'build/web-editor/js/tandem-client-0.1.0.tgz')) ||
          fs.existsSync(path.join(path.dirname(staticDir), 'js/tandem-client-0.1.0.tgz')), 'the packed client (web-editor/build.sh)');
fs.mkdirSync(artifacts, { recursive: true });

// The README's section and its two code blocks.
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Embedding: the JavaScript client'));
const block = (lang) => {
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(section);
  assert.ok(m, `a ${lang} block in the README's JavaScript section`);
  return m[1];
};
// The tarball where this build put it (DIST/../js), which is /path/to/tandem/build/web-editor/js
// in a checkout built with scripts/build.sh.
const built = path.resolve(path.dirname(staticDir), 'js');
const commands = block('sh').replaceAll('/path/to/tandem/build/web-editor/js', built).replaceAll('/path/to/tandem', root);
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-readme-'));
const app = path.join(data, 'app');
fs.mkdirSync(app);
const [port, sitePort] = await freePorts(2);
const js = block('js');
assert.ok(js.includes("'ws://127.0.0.1:8080'"), 'the README app names its server');
fs.writeFileSync(path.join(app, 'app.js'), js.replace("'ws://127.0.0.1:8080'", `'ws://127.0.0.1:${port}'`));
fs.writeFileSync(path.join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><title>README app</title>' +
                 '<script type="module" src="dist/app.js"></script>');
// As a user would: an empty folder with a package.json of its own.
fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'readme-app', private: true, type: 'module' }));
for (const line of commands.split('\n').map((l) => l.trim()).filter(Boolean)) {
  log('$', line);
  execSync(line, { cwd: app, stdio: 'inherit', env: { ...process.env, npm_config_prefer_offline: 'true', npm_config_fund: 'false',
                                                      npm_config_audit: 'false' } });
}
const bundle = path.join(app, 'dist/app.js');
assert.ok(fs.existsSync(bundle), 'the README app bundled');
log(`bundle: ${fs.statSync(bundle).size} bytes`);

// The app's page from a plain static server of its own (another origin than the Tandem server).
const site = http.createServer((req, res) => {
  const file = path.join(app, req.url === '/' ? 'index.html' : req.url.split('?')[0]);
  if (!file.startsWith(app) || !fs.existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': file.endsWith('.js') ? 'text/javascript' : 'text/html' }).end(fs.readFileSync(file));
});
await new Promise((r) => site.listen(sitePort, '127.0.0.1', r));
const server = tandemServer({ tandem, port, data, site: staticDir });
const browser = await launchChromium();
let failed = false;
try {
  await server.start();
  const ctxApp = await browser.newContext();
  const ctxEd = await browser.newContext();
  const page = await ctxApp.newPage();
  page.on('pageerror', (e) => log('app error:', e.message));
  page.on('console', (m) => { if (m.type() === 'error') log('app:', m.text()); });
  const editor = await ctxEd.newPage();
  await page.goto(`http://127.0.0.1:${sitePort}/`);
  await editor.goto(`http://127.0.0.1:${port}/d/notes-1`);
  await page.waitForSelector('.cm-content');
  await waitStatus(editor, ['connected']);
  await page.click('.cm-content');
  await page.keyboard.type('Hello from the README app ✍️', { delay: 10 });
  await waitFor(async () => (await editor.evaluate(() => window.tandem.text())) === 'Hello from the README app ✍️', 10000,
                'the app\'s typing in the web editor');
  await editor.evaluate(() => {
    const v = window.tandem.view;
    v.focus();
    v.dispatch({ selection: { anchor: v.state.doc.length } });
  });
  await editor.keyboard.type('\nand from the editor', { delay: 10 });
  const want = 'Hello from the README app ✍️\nand from the editor';
  await waitFor(async () => (await page.textContent('.cm-content')).includes('and from the editor'), 10000, 'the editor\'s typing in the app');
  await waitFor(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/api/docs/notes-1`);
    return res.ok && (await res.json()).text === want;
  }, 10000, 'the server to hold both');
  await page.screenshot({ path: path.join(artifacts, 'readme-app.png') });
  log('the README app and the web editor edit one document');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  if (server.running) await server.stop('SIGTERM');
  site.close();
  fs.rmSync(data, { recursive: true, force: true });
}
if (failed) process.exit(1);
log('ok');
