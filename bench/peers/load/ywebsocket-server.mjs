#!/usr/bin/env node
// Starts the y-websocket server (the runnable server of the npm package
// @y/websocket-server, which y-websocket 3.x split out of the client package)
// on HOST:PORT, in memory only.
//
//   node ywebsocket-server.mjs --port 1234 [--host 127.0.0.1]
//   PORT=1234 node ywebsocket-server.mjs
//
// This runs the package's own src/server.js unchanged (its bundled `ws`, its
// default settings). That file reads HOST and PORT from the environment and,
// at import time, YPERSISTENCE (LevelDB persistence) and CALLBACK_URL: both are
// removed here so that documents live in memory only.

import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { listenAddress } from './common-args.mjs';

let addr;
try {
  addr = listenAddress();
} catch (e) {
  console.error(`ywebsocket-server: ${e.message}`);
  process.exit(2);
}
if (addr.help) {
  console.log('usage: node ywebsocket-server.mjs --port N [--host 127.0.0.1]   (or PORT=N)');
  process.exit(0);
}

process.env.HOST = addr.host;
process.env.PORT = String(addr.port);
delete process.env.YPERSISTENCE;
delete process.env.CALLBACK_URL;
delete process.env.CALLBACK_OBJECTS;

// The package only exports ./utils and ./callback; its server lives at
// src/server.js (the file its `bin` entry points to). Import it by path.
const pkgJson = fileURLToPath(import.meta.resolve('@y/websocket-server/package.json'));
await import(pathToFileURL(join(dirname(pkgJson), 'src', 'server.js')).href);
