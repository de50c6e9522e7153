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

// n distinct free ports: every listener stays open until all are taken, as two calls in a row
// can be handed the same port once the first listener has closed (seen in CI: two servers on one
// port, the second failing while the first answered in its place).
export async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    servers.push(await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    }));
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
export async function freePort() {
  return (await freePorts(1))[0];
}

// A `tandem serve` on 127.0.0.1:port over `data`, serving `site`; start() waits for /healthz,
// stop(signal) for the exit ({code, sig}).
export function tandemServer({ tandem, port, data, site }) {
  let proc = null;
  return {
    get running() { return proc !== null; },
    start(extra = []) {
      const p = spawn(tandem, ['serve', '--port', String(port), '--data', data, '--static', site, '--quiet', '1', ...extra],
                      { stdio: ['ignore', 'inherit', 'inherit'] });
      proc = p;
      // A server that exits before answering must fail here, not leave another process's
      // answer on the same port to stand in for it.
      let exited = null;
      p.once('exit', (code, sig) => { exited = `exited (code ${code}, signal ${sig})`; });
      return waitFor(async () => {
        if (exited) throw new Error(`the server on port ${port} ${exited} before answering /healthz`);
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
