// scripts/check-node.cjs: passes when this Node.js meets every locked package's engines.node,
// and fails with a plain message naming the package (no stack trace) when one needs more.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const script = path.join(root, 'scripts/check-node.cjs');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'check-node-'));
const major = Number(process.versions.node.split('.')[0]);

function check(packages) {
  fs.writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: 'x', lockfileVersion: 3, packages }));
  return spawnSync(process.execPath, [script, dir, 'the thing'], { encoding: 'utf8' });
}

try {
  const ok = check({
    '': { engines: { node: '>=16' } },
    'node_modules/a': { version: '1.0.0', engines: { node: `>= ${major}` } },
    'node_modules/b': { version: '2.0.0', engines: { node: '^14.17.0 || >=16' } },
    'node_modules/c': { version: '3.0.0', engines: { node: '>=99' }, os: ['aix'] },  // never installed here
  });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`the thing runs on Node.js v${process.versions.node} .*need >= ${major}\\.0\\.0`));

  const old = check({
    'node_modules/fine': { version: '1.0.0', engines: { node: '>=10' } },
    'node_modules/too-new': { version: '9.9.9', engines: { node: `>=${major + 1}` } },
  });
  assert.equal(old.status, 1);
  assert.match(old.stderr, /the thing cannot run on Node\.js v/);
  assert.match(old.stderr, new RegExp(`too-new 9\\.9\\.9 needs node >=${major + 1}`));
  assert.doesNotMatch(old.stderr, /fine|    at /);  // only the culprit, and no stack trace
  console.log('check-node: passes and fails as it should');
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
