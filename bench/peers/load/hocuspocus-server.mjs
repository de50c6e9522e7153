#!/usr/bin/env node
// Starts a Hocuspocus server (@hocuspocus/server) on HOST:PORT, in memory only:
// no extensions (so no database or persistence), default configuration except
// `quiet: true` (no start banner).
//
//   node hocuspocus-server.mjs --port 1234 [--host 127.0.0.1]
//   PORT=1234 node hocuspocus-server.mjs

import { Server } from '@hocuspocus/server';
import { listenAddress } from './common-args.mjs';

let addr;
try {
  addr = listenAddress();
} catch (e) {
  console.error(`hocuspocus-server: ${e.message}`);
  process.exit(2);
}
if (addr.help) {
  console.log('usage: node hocuspocus-server.mjs --port N [--host 127.0.0.1]   (or PORT=N)');
  process.exit(0);
}

const server = new Server({ port: addr.port, address: addr.host, quiet: true });
await server.listen();
console.log(`hocuspocus listening on ws://${addr.host}:${addr.port}`);
