// Says which Node.js runs the project's JavaScript and whether it is new enough for a folder's
// locked npm packages, before anything is installed or built:
//   node scripts/check-node.cjs FOLDER [WHAT]
// FOLDER holds a package-lock.json; every locked package's `engines.node` lower bound is read and
// the highest one is what this Node.js must reach. Prints one line; exits 1 with the packages that
// need more (and what to do) when it does not. Written in plain ES5 so that it parses on any Node.
'use strict';
var fs = require('fs');
var path = require('path');

var folder = process.argv[2];
var what = process.argv[3] || folder;
if (!folder) {
  console.error('usage: node scripts/check-node.cjs FOLDER [WHAT]');
  process.exit(2);
}

function parseVersion(text) {
  var m = /^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(text);
  return m ? [Number(m[1]), Number(m[2] || 0), Number(m[3] || 0)] : null;
}
function compare(a, b) {
  for (var i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}
function show(v) { return v.join('.'); }

// The lowest version a range such as ">=18", ">= 6", "^14.17.0 || >=16" or "18.x" accepts;
// null for a range this check does not understand (reported, not guessed at).
function lowerBound(range) {
  var best = null;
  var alternatives = String(range).split('||');
  for (var i = 0; i < alternatives.length; i++) {
    var alt = alternatives[i].trim();
    var m = /^(>=|\^|~|=)?\s*(v?\d+(?:\.\d+)?(?:\.\d+)?)(?:\.x)?(\s+<.*)?$/.exec(alt) ||
            /^(>=|\^|~|=)?\s*(v?\d+)\.x$/.exec(alt);
    if (alt === '*' || alt === '') return [0, 0, 0];
    if (!m) return null;
    var v = parseVersion(m[2]);
    if (!best || compare(v, best) < 0) best = v;
  }
  return best;
}

var lockFile = path.join(folder, 'package-lock.json');
var lock;
try {
  lock = JSON.parse(fs.readFileSync(lockFile, 'utf8'));
} catch (e) {
  console.error('check-node: cannot read ' + lockFile + ': ' + e.message);
  process.exit(2);
}

var have = parseVersion(process.versions.node);
var needed = [0, 0, 0];
var tooNew = [];
var unknown = [];
var packages = lock.packages || {};
Object.keys(packages).forEach(function (key) {
  var p = packages[key];
  if (!p.engines || !p.engines.node) return;
  // Platform-specific optional packages (esbuild's binaries for other systems) are never installed.
  if (p.os && p.os.indexOf(process.platform) < 0) return;
  var name = key === '' ? (lock.name || 'the folder itself') : key.replace(/^.*node_modules\//, '');
  var bound = lowerBound(p.engines.node);
  if (!bound) {
    unknown.push(name + ' (' + p.engines.node + ')');
    return;
  }
  if (compare(bound, needed) > 0) needed = bound;
  if (compare(have, bound) < 0) tooNew.push(name + ' ' + (p.version || '') + ' needs node ' + p.engines.node);
});

var where = process.execPath;
if (tooNew.length) {
  console.error('check-node: ' + what + ' cannot run on Node.js v' + show(have) + ' (' + where + '):');
  tooNew.forEach(function (t) { console.error('  ' + t); });
  console.error('check-node: install Node.js ' + show(needed) + ' or newer, or put it first on PATH.');
  process.exit(1);
}
console.log('check-node: ' + what + ' runs on Node.js v' + show(have) + ' (' + where + '); its packages need >= ' +
            show(needed) + (unknown.length ? '; ranges not checked: ' + unknown.join(', ') : ''));
