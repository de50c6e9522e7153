// Lets the editor start without the server (offline, or the server down): the app shell is
// answered from the network when it can be, else from the cache. The document itself comes from
// IndexedDB and the WebSocket, never from here.
const CACHE = 'tandem-shell-v1';
const SHELL = ['/', '/assets/app.js', '/assets/style.css'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== location.origin) return;
  const shell = req.mode === 'navigate' ? '/' : url.pathname;
  if (!SHELL.includes(shell)) return;
  e.respondWith(fetch(req).then((res) => {
    if (res.ok) {
      const copy = res.clone();
      caches.open(CACHE).then((c) => c.put(shell, copy));
    }
    return res;
  }).catch(() => caches.match(shell).then((hit) => hit || Response.error())));
});
