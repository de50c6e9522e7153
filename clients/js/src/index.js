// @tandem/client: a Tandem document in a web app (see ../README.md).
export { openDocument, TandemDocument, socketUrl, DOC_ID } from './document.js';
export { ReplicaStore } from './store.js';
export { SyncClient } from './sync.js';
export { tokenSubject, tokenMode } from './agent.js';
export { colorFor, distinctColor, isColor, PALETTE } from './color.js';
export { DocumentHistory, HistoryError, changes } from './history.js';
