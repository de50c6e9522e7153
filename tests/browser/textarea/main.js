// A <textarea> bound to one document through the package's core API: what the user types becomes
// insert/delete calls, what others type comes as 'change' patches, the selection is sent as
// presence. Deliberately small; the CodeMirror binding is @tandem/client/codemirror.
import createEngine from 'tandem-engine';
import { openDocument } from '@tandem/client';

const params = new URLSearchParams(location.search);
const area = document.querySelector('textarea');
const status = document.querySelector('[data-testid=status]');
const unsent = document.querySelector('[data-testid=unsent]');

const doc = await openDocument({ engine: createEngine, docId: params.get('doc'), token: params.get('token') || '' });
doc.setPresence({ name: params.get('name') || 'textarea' });
status.textContent = doc.status;
doc.on('status', (s) => { status.textContent = s; });
const showUnsent = (n) => { unsent.textContent = `${n} unsent`; };
doc.on('unsent', showUnsent);
showUnsent(doc.unsent());

let shown = doc.text();  // what the textarea showed after the last sync
area.value = shown;
area.disabled = false;

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

// The user changed the text: the one span that differs between before and after (common prefix
// and suffix, never splitting a surrogate pair) becomes a delete and an insert.
area.addEventListener('input', () => {
  const now = area.value;
  const max = Math.min(shown.length, now.length);
  let start = 0;
  while (start < max && shown.charCodeAt(start) === now.charCodeAt(start)) start++;
  if (start > 0 && isHigh(shown.charCodeAt(start - 1))) start--;
  let end = 0;
  while (end < max - start && shown.charCodeAt(shown.length - 1 - end) === now.charCodeAt(now.length - 1 - end)) end++;
  if (end > 0 && isLow(shown.charCodeAt(shown.length - end))) end--;
  doc.delete(start, shown.length - start - end);
  doc.insert(start, now.slice(start, now.length - end));
  shown = now;
  sendSelection();
});

// Others changed the text: show it, keeping the selection where it was in the text.
doc.on('change', (patches) => {
  let a = area.selectionStart, b = area.selectionEnd;
  const map = (pos, [from, deleted, text]) =>
    pos <= from ? pos : pos >= from + deleted ? pos + text.length - deleted : from + text.length;
  for (const p of patches) {
    a = map(a, p);
    b = map(b, p);
  }
  area.value = shown = doc.text();
  area.setSelectionRange(a, b);
});

function sendSelection() {
  const forward = area.selectionDirection !== 'backward';
  const [anchor, head] = forward ? [area.selectionStart, area.selectionEnd] : [area.selectionEnd, area.selectionStart];
  doc.setPresence({ anchor, head });
}
document.addEventListener('selectionchange', sendSelection);
area.addEventListener('select', sendSelection);

window.tandem = { doc, text: () => doc.text(), shown: () => area.value, unsent: () => doc.unsent() };
