// The replica's state in IndexedDB, so that edits not yet acknowledged survive a reload:
// one record per (document, agent): { key, doc, agent, state, unsent, at }, `state` being the
// replica's save() (the replica and its protocol state). Records of older versions hold
// `snapshot` and `acked` instead; openDocument still reads them.
const DB = 'tandem', STORE = 'replicas';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => {
      const s = req.result.createObjectStore(STORE, { keyPath: 'key' });
      s.createIndex('doc', 'doc');
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class ReplicaStore {
  static async open() {
    try {
      return new ReplicaStore(await open());
    } catch (e) {
      console.warn('tandem: IndexedDB unavailable, unsent edits will not survive a reload', e);
      return new ReplicaStore(null);
    }
  }
  constructor(db) { this.db = db; }

  async list(doc) {
    if (!this.db) return [];
    const tx = this.db.transaction(STORE, 'readonly');
    return done(tx.objectStore(STORE).index('doc').getAll(doc));
  }

  async put(doc, agent, state, unsent) {
    if (!this.db) return;
    const tx = this.db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put({ key: `${doc}\n${agent}`, doc, agent, state, unsent, at: Date.now() });
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  async remove(doc, agent) {
    if (!this.db) return;
    const tx = this.db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).delete(`${doc}\n${agent}`);
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }
}
