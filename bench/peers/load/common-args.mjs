// Small helpers shared by the launchers: read the listen address from flags or env.
//   --port N / PORT, --host H / HOST (default 127.0.0.1).

export function listenAddress(argv = process.argv.slice(2), env = process.env) {
  let port = env.PORT;
  let host = env.HOST || '127.0.0.1';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') port = argv[++i];
    else if (a.startsWith('--port=')) port = a.slice(7);
    else if (a === '--host') host = argv[++i];
    else if (a.startsWith('--host=')) host = a.slice(7);
    else if (a === '-h' || a === '--help') return { help: true };
    else throw new Error(`unknown argument: ${a}`);
  }
  const n = Number(port);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) {
    throw new Error('give a port: --port N or PORT=N');
  }
  return { host, port: n };
}
