// Tags and a note per run: chips for the runs table, an editor for the run page and the table's
// dialog, and the write through PUT api/runs/<name>/annotations. The server checks the same
// limits; checking them here first says what is wrong before a round trip.
import { h, clear, enc } from './util.js';
import { section } from './views.js';

export const MAX_TAGS = 32, MAX_TAG_LENGTH = 64, MAX_NOTE_LENGTH = 10000;

// What is wrong with a tag, or null. Commas are refused because tags travel comma-separated
// (CSV export, the API's own checks).
export function tagProblem(tag) {
  if (!tag) return 'a tag cannot be empty';
  if (tag.length > MAX_TAG_LENGTH) return `"${tag.slice(0, 20)}…" has ${tag.length} characters: at most ${MAX_TAG_LENGTH}`;
  if (/[\u0000-\u001f\u007f]/.test(tag)) return 'a tag cannot hold control characters';
  if (tag.includes(',')) return `"${tag}" holds a comma: tags cannot`;
  return null;
}

export function annotationsProblem({ tags, note }) {
  if (tags.length > MAX_TAGS) return `${tags.length} tags: at most ${MAX_TAGS}`;
  for (const t of tags) { const p = tagProblem(t); if (p) return p; }
  if (note.length > MAX_NOTE_LENGTH) return `the note has ${note.length.toLocaleString('en-US')} characters: at most ${MAX_NOTE_LENGTH.toLocaleString('en-US')}`;
  return null;
}

// The messages a reader can act on, by the server's answer.
function writeError(status, serverMessage) {
  if (status === 403) return 'Not saved: writes need the dashboard on loopback or its token (open the URL trainscope printed, with ?token=…).';
  if (status === 401) return 'Not saved: the dashboard wants its token (open the URL trainscope printed, with ?token=…).';
  if (status === 404) return 'Not saved: the run is no longer in the runs directory.';
  if (status === 405) return 'Not saved: this dashboard is read-only (a trainscope older than tags and notes).';
  if (status === 400) return `Not saved: ${serverMessage}`;
  return `Not saved: ${serverMessage || `the server answered ${status}`}`;
}

// Stores {tags, note} for run `name`; resolves with what the server stored, throws an Error
// whose message says what to do. The page's ?token= goes along as a bearer token, as the
// cookie the server set for it would (a token-protected dashboard opened by its printed URL).
export async function saveAnnotations(name, annotations) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  const token = new URLSearchParams(location.search).get('token');
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(`api/runs/${enc(name)}/annotations`, { method: 'PUT', credentials: 'same-origin', headers, body: JSON.stringify(annotations) });
  } catch {
    throw new Error('Not saved: the dashboard server cannot be reached.');
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) throw Object.assign(new Error(writeError(res.status, body?.error)), { status: res.status });
  return { tags: Array.isArray(body?.tags) ? body.tags : annotations.tags, note: typeof body?.note === 'string' ? body.note : annotations.note };
}

const normalize = (a) => ({ tags: Array.isArray(a?.tags) ? [...a.tags] : [], note: typeof a?.note === 'string' ? a.note : '' });

// Chips for a run's tags; onPick(tag), when given, makes each a button (the table filters by it).
export function tagChips(tags, onPick) {
  if (!tags || !tags.length) return null;
  return h('span', { class: 'chips' }, tags.map((t) => (onPick
    ? h('button', { type: 'button', class: 'chip', title: `show the runs tagged ${t}`, dataset: { tag: t }, onclick: (e) => { e.stopPropagation(); onPick(t); }, text: t })
    : h('span', { class: 'chip', dataset: { tag: t }, text: t }))));
}

// An editor of one run's tags and note. Tags are added with Enter, Tab or a comma and removed
// with their x (or Backspace in the empty input); Save writes both. onSaved(stored) after a
// save; onCancel, when given, adds a Cancel button (the table's dialog).
export function annotationsEditor(name, initial, { onSaved = null, onCancel = null, suggestions = [] } = {}) {
  let saved = normalize(initial);
  const draft = normalize(initial);
  const chipBox = h('span', { class: 'chips editable' });
  const listId = `tag-suggestions-${Math.random().toString(36).slice(2)}`;
  const input = h('input', { type: 'text', class: 'tag-input', placeholder: 'add a tag', 'aria-label': 'add a tag', maxlength: String(MAX_TAG_LENGTH), list: listId });
  const datalist = h('datalist', { id: listId }, suggestions.map((t) => h('option', { value: t })));
  const note = h('textarea', { class: 'note-input', rows: '2', placeholder: 'a note: what this run tried, what it showed', 'aria-label': 'note', maxlength: String(MAX_NOTE_LENGTH) });
  note.value = draft.note;
  const saveBtn = h('button', { type: 'submit', class: 'primary', text: 'Save', disabled: true });
  const message = h('span', { class: 'save-message', role: 'status', 'aria-live': 'polite' });
  const dirty = () => JSON.stringify(draft) !== JSON.stringify(saved);
  const say = (text, kind = '') => { message.textContent = text; message.className = `save-message ${kind}`; };
  const update = () => { saveBtn.disabled = !dirty(); if (dirty()) say('unsaved changes', 'muted'); };

  const drawChips = () => {
    clear(chipBox);
    for (const t of draft.tags) {
      chipBox.appendChild(h('span', { class: 'chip', dataset: { tag: t } }, t,
        h('button', { type: 'button', class: 'chip-x', 'aria-label': `remove tag ${t}`, title: 'remove', text: '×', onclick: () => { draft.tags = draft.tags.filter((x) => x !== t); drawChips(); update(); } })));
    }
    chipBox.appendChild(input);
  };
  // Takes what the input holds as tags (a pasted "a, b" gives two); false when one is refused.
  const addFromInput = () => {
    const words = input.value.split(',').map((s) => s.trim()).filter(Boolean);
    for (const w of words) {
      const problem = tagProblem(w) || (draft.tags.length >= MAX_TAGS ? `at most ${MAX_TAGS} tags` : null);
      if (problem) { say(problem, 'error'); return false; }
      if (!draft.tags.includes(w)) draft.tags.push(w);
    }
    input.value = '';
    drawChips(); update(); input.focus();
    return true;
  };
  input.addEventListener('keydown', (e) => {
    if ((e.key === 'Enter' || e.key === ',' || (e.key === 'Tab' && input.value.trim())) && !e.isComposing) {
      e.preventDefault();
      addFromInput();
    } else if (e.key === 'Backspace' && !input.value && draft.tags.length) {
      draft.tags.pop(); drawChips(); update();
    }
  });
  input.addEventListener('input', () => { if (input.value.includes(',')) addFromInput(); });
  note.addEventListener('input', () => { draft.note = note.value; update(); });

  const form = h('form', { class: 'annotations', dataset: { annotations: name } },
    // A div, not a label: a label would pass a click on its text to the first chip's remove button.
    h('div', { class: 'field' }, h('span', { class: 'field-label', text: 'Tags' }), chipBox, datalist),
    h('label', { class: 'field' }, h('span', { class: 'field-label', text: 'Note' }), note),
    h('div', { class: 'form-actions' }, saveBtn, onCancel ? h('button', { type: 'button', text: 'Cancel', onclick: () => onCancel() }) : null, message));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (input.value.trim() && !addFromInput()) return;
    const problem = annotationsProblem(draft);
    if (problem) { say(problem, 'error'); return; }
    saveBtn.disabled = true;
    say('saving…', 'muted');
    try {
      saved = await saveAnnotations(name, draft);
      Object.assign(draft, normalize(saved));
      note.value = draft.note;
      drawChips();
      say('saved', 'ok');
      if (onSaved) onSaved(saved);
    } catch (err) {
      say(err.message, 'error');
      saveBtn.disabled = false;
    }
  });
  drawChips();
  return form;
}

// The run page's card (runPage mounts it with one line).
export function annotationsSection(name, annotations) {
  return section('Tags and notes', annotationsEditor(name, annotations));
}

// The runs table's editor: a modal dialog over the table, closed by Save, Cancel or Escape.
export function editAnnotationsDialog(run, { onSaved, suggestions }) {
  const dialog = h('dialog', { class: 'card annotations-dialog', 'aria-label': `tags and note of ${run.display_name || run.name}` });
  const close = () => { dialog.close(); dialog.remove(); };
  dialog.append(
    h('div', { class: 'section-head' }, h('h2', { text: 'Tags and note' }), h('span', { class: 'muted mono', text: run.display_name || run.name })),
    annotationsEditor(run.name, run.annotations, { suggestions, onCancel: close, onSaved: (stored) => { onSaved(stored); close(); } }));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
  dialog.querySelector('.tag-input').focus();
  return dialog;
}
