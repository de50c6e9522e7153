// What the browser tests share: the Node.js check, arguments, waiting, a free port, a real
// `tandem serve` they start and stop, and Debian's Chromium.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const requireEditor = createRequire(path.join(root, 'web-editor/package.json'));

// Playwright refuses a Node.js older than it supports with a bare message deep in its loader:
// say which Node.js this is and what the locked packages need before loading it.
export function checkNode(what) {
  const check = spawnSync(process.execPath, [path.join(root, 'scripts/check-node.cjs'), path.join(root, 'web-editor'), what],
                          { encoding: 'utf8' });
  process.stdout.write(check.stdout);
  process.stderr.write(check.stderr);
  if (check.status !== 0) process.exit(1);
}

export const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};

export const log = (...a) => console.log(`[${(performance.now() / 1000).toFixed(1)}s]`, ...a);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(fn, ms, what) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A `tandem serve` on 127.0.0.1:port over `data`, serving `site`; start() waits for /healthz,
// stop(signal) for the exit ({code, sig}).
export function tandemServer({ tandem, port, data, site }) {
  let proc = null;
  return {
    get running() { return proc !== null; },
    start(extra = []) {
      proc = spawn(tandem, ['serve', '--port', String(port), '--data', data, '--static', site, '--quiet', '1', ...extra],
                   { stdio: ['ignore', 'inherit', 'inherit'] });
      return waitFor(async () => {
        try {
          return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok;
        } catch {
          return false;
        }
      }, 10000, 'the server to answer /healthz');
    },
    stop(signal) {
      const s = proc;
      proc = null;
      const exited = new Promise((r) => s.once('exit', (code, sig) => r({ code, sig })));
      s.kill(signal);
      return exited;
    },
  };
}

export const status = (page) => page.textContent('[data-testid=status]');
export async function waitStatus(page, want, ms = 15000) {
  await waitFor(async () => want.includes(await status(page)), ms, `status ${want.join('/')} (now ${await status(page)})`);
}

// Debian's chromium (never a downloaded one), headless.
export function launchChromium() {
  const { chromium } = requireEditor('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
}
