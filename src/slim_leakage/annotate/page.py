"""The single HTML page of the annotation app (no external resources: it works offline)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>slim-leakage: label leakage</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
  #prompt { font-size: 1.25rem; margin: .5rem 0 1rem; }
  #entities { color: #555; }
  .pair { display: flex; gap: 1.5rem; }
  .pair figure { margin: 0; text-align: center; }
  .pair img { width: 384px; height: 384px; object-fit: contain; image-rendering: pixelated;
              border: 1px solid #ccc; background: #f4f4f4; }
  .choices { display: flex; gap: .5rem; margin-top: 1rem; flex-wrap: wrap; }
  .choices button { padding: .6rem .9rem; font-size: 1rem; cursor: pointer; }
  kbd { border: 1px solid #999; border-radius: 3px; padding: 0 .3rem; font-size: .85rem; }
  #status { margin-top: 1rem; color: #555; }
  #error { color: #a00; }
  #finished { font-size: 1.25rem; }
  #legend { display: flex; gap: 1rem; margin: .5rem 0; flex-wrap: wrap; }
  #legend figure { margin: 0; text-align: center; font-size: .9rem; }
  #legend img { width: 64px; height: 64px; image-rendering: pixelated; border: 1px solid #ccc; }
  .choices button:disabled { cursor: wait; opacity: .6; }
</style>
</head>
<body>
<h1>Which image shows less leakage?</h1>
<p>Leakage: features of one entity appearing on another (a horse with cow ears). Compare how
typical each entity looks in the two images. Keys <kbd>1</kbd>-<kbd>5</kbd> answer.</p>
<div id="task" hidden>
  <div id="prompt"></div>
  <div id="entities"></div>
  <div id="legend" hidden></div>
  <div class="pair">
    <figure><img id="left" alt="left image"><figcaption>Left</figcaption></figure>
    <figure><img id="right" alt="right image"><figcaption>Right</figcaption></figure>
  </div>
  <div class="choices">
    <button data-choice="left-major"><kbd>1</kbd> Left: much less leakage</button>
    <button data-choice="left-minor"><kbd>2</kbd> Left: slightly less</button>
    <button data-choice="same"><kbd>3</kbd> No difference</button>
    <button data-choice="right-minor"><kbd>4</kbd> Right: slightly less</button>
    <button data-choice="right-major"><kbd>5</kbd> Right: much less leakage</button>
  </div>
</div>
<p><button id="undo" disabled><kbd>U</kbd> Undo the last answer</button></p>
<div id="finished" hidden>All samples are labelled. Thank you.</div>
<div id="status"></div>
<div id="error"></div>
<script>
"use strict";
let current = null;
let busy = false;
let readyAt = 0;
const KEYS = {"1": "left-major", "2": "left-minor", "3": "same", "4": "right-minor",
              "5": "right-major"};

function setReady(ready) {
  document.body.dataset.ready = ready ? "1" : "";
  document.querySelectorAll("button[data-choice]").forEach(function (b) { b.disabled = !ready; });
}

function showLegend(legend) {
  // toy-world samples: which pattern (and shape) belongs to which entity
  const box = document.getElementById("legend");
  box.replaceChildren();
  box.hidden = !legend;
  (legend || []).forEach(function (e) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = e.image;
    img.alt = e.entity;
    const cap = document.createElement("figcaption");
    cap.textContent = e.entity + ": " + e.pattern + " " + e.shape;
    fig.append(img, cap);
    box.append(fig);
  });
}

function show(state) {
  const changed = !current || !state.item || current.sample_id !== state.item.sample_id;
  current = state.item;
  document.getElementById("status").textContent =
    state.annotator + ": " + state.done + " of " + state.total + " labelled";
  document.getElementById("task").hidden = !current;
  document.getElementById("finished").hidden = !!current;
  document.getElementById("undo").disabled = !state.can_undo;
  document.body.dataset.sample = current ? current.sample_id : "";
  if (!current) return;
  document.getElementById("prompt").textContent = current.prompt;
  document.getElementById("entities").textContent = "Entities: " + current.entities.join(", ");
  showLegend(current.legend);
  if (!changed) return;
  // one answer per shown sample: input waits until the new pair has been on screen a moment,
  // so a double click or a held key cannot answer a sample nobody saw
  setReady(false);
  readyAt = Date.now() + (state.min_view_ms || 0);
  document.getElementById("left").src = current.left;
  document.getElementById("right").src = current.right;
  const shown = current.sample_id;
  setTimeout(function () {
    if (current && current.sample_id === shown) setReady(true);
  }, (state.min_view_ms || 0) + 20);
}

async function load() {
  const res = await fetch("/api/state");
  show(await res.json());
}

async function post(path, body) {
  return fetch(path, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  });
}

async function undo() {
  if (busy) return;
  busy = true;
  try {
    const res = await post("/api/undo", {});
    const data = await res.json();
    document.getElementById("error").textContent = res.ok ? "" : data.error;
    current = null;
    if (res.ok) show(data.state); else await load();
  } finally {
    busy = false;
  }
}

async function answer(choice) {
  if (!current || busy || Date.now() < readyAt || document.body.dataset.ready !== "1") return;
  busy = true;
  setReady(false);
  try {
    const res = await post("/api/label", {sample_id: current.sample_id, choice: choice});
    const data = await res.json();
    if (!res.ok) {
      document.getElementById("error").textContent = data.error;
      current = null;
      await load();
      return;
    }
    document.getElementById("error").textContent = "";
    show(data.state);
  } finally {
    busy = false;
  }
}

document.querySelectorAll("button[data-choice]").forEach(function (b) {
  b.addEventListener("click", function () { answer(b.dataset.choice); });
});
document.getElementById("undo").addEventListener("click", undo);
document.addEventListener("keydown", function (e) {
  if (e.repeat) return;
  if (KEYS[e.key]) { e.preventDefault(); answer(KEYS[e.key]); }
  else if (e.key === "u" || e.key === "U") { e.preventDefault(); undo(); }
});
load();
</script>
</body>
</html>
"""
