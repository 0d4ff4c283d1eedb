// Finetuner Labeler page: questions from /api/questions, answers to /api/labels, progress from /api/progress.
"use strict";

const state = {
  client: sessionStorage.getItem("labeler-client") || Math.random().toString(36).slice(2),
  questions: [],      // [{query_id, matches: [{id, score}]}]
  cards: {},          // id -> {kind, src | text}
  relevant: new Set(),// "query_id\u0000match_id"
  current: 0,         // focused question
  focus: 0,           // focused match within it
  pin: null,
  settings: {},
  busy: false,
  fitting: false,
  expanded: new Set(),// ids of long text cards shown whole
};
sessionStorage.setItem("labeler-client", state.client);

const $ = (id) => document.getElementById(id);
const key = (q, m) => q + "\u0000" + m;

function showError(text) {
  const el = $("error");
  el.textContent = text || "";
  el.hidden = !text;
}
function say(text) { $("message").textContent = text; }

async function api(path, options = {}) {
  const init = { headers: { "Content-Type": "application/json" }, ...options };
  if (init.body && typeof init.body !== "string") init.body = JSON.stringify(init.body);
  const response = await fetch(path, init);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  // Jina's own /post answers HTTP 200 with header.status.code = 1 on errors: check both.
  const jinaError = data && data.header && data.header.status && data.header.status.code === 1;
  if (!response.ok || jinaError || data.error) {
    throw new Error(data.error || (jinaError && data.header.status.description) || response.statusText);
  }
  return data;
}

function cardElement(id, extraClass) {
  const card = state.cards[id] || { kind: "text", text: id };
  const el = document.createElement("div");
  el.className = "card " + extraClass;
  el.dataset.id = id;
  if (card.kind === "image") {
    const img = document.createElement("img");
    img.src = card.src;
    img.alt = "document " + id;
    el.appendChild(img);
  } else {
    el.classList.add("text-card");
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = card.text;
    el.appendChild(text);
    el.appendChild(expandControl(id, el));
  }
  return el;
}

// "more"/"less" on a text card (shown once rendered only where the text is clamped, see showExpandControls):
// shows the whole text; never labels the card, never takes keyboard focus.
function expandControl(id, el) {
  const open = state.expanded.has(id);
  el.classList.toggle("expanded", open);
  const more = document.createElement("button");
  more.className = "more";
  more.hidden = !open;
  more.tabIndex = -1;
  more.textContent = open ? "less" : "more";
  more.setAttribute("aria-expanded", open ? "true" : "false");
  more.addEventListener("click", (event) => {
    event.stopPropagation();
    if (open) state.expanded.delete(id); else state.expanded.add(id);
    render();
  });
  return more;
}

function render() {
  const root = $("questions");
  root.replaceChildren();
  state.questions.forEach((question, qi) => {
    const block = document.createElement("section");
    block.className = "question" + (qi === state.current ? " current" : "");
    block.dataset.queryId = question.query_id;
    const side = document.createElement("div");
    side.className = "query-side";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = "query " + (qi + 1);
    side.appendChild(label);
    side.appendChild(cardElement(question.query_id, "query"));
    const pin = document.createElement("button");
    pin.className = "pin";
    pin.textContent = state.pin === question.query_id ? "unpin" : "📌 pin this query";
    pin.addEventListener("click", () => togglePin(question.query_id));
    side.appendChild(pin);
    block.appendChild(side);
    const matches = document.createElement("div");
    matches.className = "matches";
    question.matches.forEach((match, mi) => {
      const el = cardElement(match.id, "match");
      const on = state.relevant.has(key(question.query_id, match.id));
      el.classList.toggle("relevant", on);
      el.classList.toggle("focused", qi === state.current && mi === state.focus);
      el.setAttribute("role", "button");
      el.setAttribute("aria-pressed", on ? "true" : "false");
      el.title = "score " + match.score;
      const k = document.createElement("span");
      k.className = "key";
      k.textContent = mi < 10 ? String((mi + 1) % 10) : "";
      el.appendChild(k);
      el.addEventListener("click", () => { state.current = qi; state.focus = mi; toggle(qi, mi); });
      matches.appendChild(el);
    });
    block.appendChild(matches);
    root.appendChild(block);
  });
  showExpandControls(root);
  $("pin-status").hidden = !state.pin;
  $("pinned-id").textContent = state.pin || "";
  if (!state.questions.length) say("No more questions: every item has been asked. Fit, save or export.");
}

function showExpandControls(root) {
  for (const card of root.querySelectorAll(".text-card:not(.expanded)")) {
    const text = card.querySelector(".text");
    card.querySelector(".more").hidden = text.scrollHeight <= text.clientHeight + 1;
  }
}

function toggle(qi, mi) {
  const question = state.questions[qi];
  if (!question || !question.matches[mi]) return;
  const k = key(question.query_id, question.matches[mi].id);
  if (state.relevant.has(k)) state.relevant.delete(k); else state.relevant.add(k);
  render();
}

function setAll(qi, on) {
  const question = state.questions[qi];
  if (!question) return;
  for (const match of question.matches) {
    const k = key(question.query_id, match.id);
    if (on) state.relevant.add(k); else state.relevant.delete(k);
  }
  render();
}

async function loadQuestions() {
  const params = new URLSearchParams({ client: state.client });
  if (state.pin) params.set("pin", state.pin);
  const data = await api("/api/questions?" + params.toString());
  state.questions = data.questions;
  state.cards = data.cards;
  state.relevant = new Set();
  state.current = 0;
  state.focus = 0;
  render();
  say(`${data.questions.length} question(s) by ${data.strategy}, model v${data.model_version}, ${data.elapsed_ms} ms`);
}

async function submitRound() {
  if (state.busy || !state.questions.length) return;
  state.busy = true;
  showError("");
  const labels = [];
  for (const question of state.questions) {
    for (const match of question.matches) {
      labels.push({
        query_id: question.query_id,
        match_id: match.id,
        label: state.relevant.has(key(question.query_id, match.id)) ? 1 : -1,
      });
    }
  }
  try {
    const result = await api("/api/labels", { method: "POST", body: { labels, client: state.client } });
    showProgress(result);
    say(`round ${result.round} saved (${result.stored} labels)`);
    await loadQuestions();
    refreshProgress();
  } catch (e) {
    showError("Could not save the labels: " + e.message);
  } finally {
    state.busy = false;
  }
}

function showProgress(p) {
  for (const name of ["labelled", "positive", "negative", "rounds"]) {
    if (p[name] !== undefined) $("stat-" + name).textContent = p[name];
  }
  if (p.index) {
    $("stat-model").textContent = "v" + p.index.model_version;
    $("stat-metric").textContent = p.index.label_map == null ? "–" : p.index.label_map.toFixed(3);
  }
  if (p.fit) {
    const loss = p.fit.metrics && p.fit.metrics.loss;
    $("stat-loss").textContent = loss == null ? "–" : Number(loss).toFixed(4);
    let text = p.fit.running ? "fitting…" : (p.fit.fits ? `done (${p.fit.fits})` : "idle");
    if (p.fit.error) text = "failed: " + p.fit.error;
    const re = p.index && p.index.reembedding;
    if (!p.fit.running && re && re.running) text = `re-embedding ${re.done}/${re.total}`;
    $("fit-status").textContent = text;
    state.fitting = p.fit.running || (re && re.running);
  }
}

async function refreshProgress() {
  try { showProgress(await api("/api/progress")); } catch (e) { showError("progress: " + e.message); }
}

async function fit() {
  showError("");
  try {
    const result = await api("/api/fit", { method: "POST", body: {} });
    say(result.started ? "training started in the background; keep labelling" : "not started: " + result.reason);
    state.fitting = true;
    refreshProgress();
  } catch (e) { showError("Could not fit: " + e.message); }
}

async function save() {
  showError("");
  try {
    const result = await api("/api/save", { method: "POST", body: {} });
    say(`model v${result.version} saved to ${result.path}`);
  } catch (e) { showError("Could not save the model: " + e.message); }
}

async function exportLabels() {
  showError("");
  try {
    const result = await api("/api/export", { method: "POST", body: {} });
    say(`${result.labels} labels of ${result.queries} queries exported to ${result.path}`);
  } catch (e) { showError("Could not export: " + e.message); }
}

async function togglePin(queryId) {
  state.pin = state.pin === queryId ? null : queryId;
  try { await loadQuestions(); } catch (e) { showError(e.message); }
}

async function loadSettings() {
  const data = await api("/api/settings");
  state.settings = data.settings;
  $("set-topk").value = data.settings.top_k;
  $("set-questions").value = data.settings.questions;
  $("set-epochs").value = data.settings.epochs;
  $("set-strategy").value = data.settings.strategy;
}

async function applySettings(event) {
  event.preventDefault();
  showError("");
  const body = {
    top_k: Number($("set-topk").value),
    questions: Number($("set-questions").value),
    epochs: Number($("set-epochs").value),
    strategy: $("set-strategy").value,
  };
  try {
    await api("/api/settings", { method: "POST", body });
    await loadSettings();
    await loadQuestions();
    say("settings applied");
  } catch (e) { showError("Could not apply the settings: " + e.message); }
}

function onKey(event) {
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const question = state.questions[state.current];
  const count = question ? question.matches.length : 0;
  const k = event.key;
  let handled = true;
  if (/^[0-9]$/.test(k)) {
    const mi = k === "0" ? 9 : Number(k) - 1;
    if (mi < count) { state.focus = mi; toggle(state.current, mi); }
  } else if (k === "ArrowRight") { state.focus = Math.min(count - 1, state.focus + 1); render(); }
  else if (k === "ArrowLeft") { state.focus = Math.max(0, state.focus - 1); render(); }
  else if (k === "ArrowDown" || k === "j") {
    state.current = Math.min(state.questions.length - 1, state.current + 1); state.focus = 0; render();
  } else if (k === "ArrowUp" || k === "k") {
    state.current = Math.max(0, state.current - 1); state.focus = 0; render();
  } else if (k === " ") { toggle(state.current, state.focus); }
  else if (k === "a") { setAll(state.current, true); }
  else if (k === "c") { setAll(state.current, false); }
  else if (k === "Enter") { submitRound(); }
  else if (k === "p") { if (question) togglePin(question.query_id); }
  else if (k === "f") { fit(); }
  else if (k === "s") { save(); }
  else if (k === "e") { exportLabels(); }
  else if (k === "?") { $("help").hidden = !$("help").hidden; }
  else handled = false;
  if (handled) event.preventDefault();
}

async function finish() {
  try {
    await api("/api/stop", { method: "POST", body: {} });
    say("The Labeler is shutting down; the tuned model is returned to your program.");
  } catch (e) { showError(e.message); }
}

function schedule() {
  setTimeout(async () => { await refreshProgress(); schedule(); }, state.fitting ? 1000 : 4000);
}

async function main() {
  $("submit").addEventListener("click", submitRound);
  $("fit").addEventListener("click", fit);
  $("save").addEventListener("click", save);
  $("export").addEventListener("click", exportLabels);
  $("finish").addEventListener("click", finish);
  $("unpin").addEventListener("click", () => togglePin(state.pin));
  $("help-toggle").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
  $("settings").addEventListener("submit", applySettings);
  document.addEventListener("keydown", onKey);
  try {
    await loadSettings();
    await loadQuestions();
    await refreshProgress();
  } catch (e) { showError("Could not reach the Labeler: " + e.message); }
  document.body.dataset.ready = "true";
  schedule();
}

main();
