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
</style>
</head>
<body>
<h1>Which image shows less leakage?</h1>
<p>Leakage: features of one entity appearing on another (a horse with cow ears). Compare how
typical each entity looks in the two images. Keys <kbd>1</kbd>-<kbd>5</kbd> answer.</p>
<div id="task" hidden>
  <div id="prompt"></div>
  <div id="entities"></div>
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
<div id="finished" hidden>All samples are labelled. Thank you.</div>
<div id="status"></div>
<div id="error"></div>
<script>
"use strict";
let current = null;
let busy = false;
const KEYS = {"1": "left-major", "2": "left-minor", "3": "same", "4": "right-minor",
              "5": "right-major"};

function show(state) {
  current = state.item;
  document.getElementById("status").textContent =
    state.annotator + ": " + state.done + " of " + state.total + " labelled";
  document.getElementById("task").hidden = !current;
  document.getElementById("finished").hidden = !!current;
  document.body.dataset.sample = current ? current.sample_id : "";
  if (!current) return;
  document.getElementById("prompt").textContent = current.prompt;
  document.getElementById("entities").textContent = "Entities: " + current.entities.join(", ");
  document.getElementById("left").src = current.left;
  document.getElementById("right").src = current.right;
}

async function load() {
  const res = await fetch("/api/state");
  show(await res.json());
}

async function answer(choice) {
  if (!current || busy) return;
  busy = true;
  try {
    const res = await fetch("/api/label", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({sample_id: current.sample_id, choice: choice}),
    });
    const data = await res.json();
    if (!res.ok) {
      document.getElementById("error").textContent = data.error;
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
document.addEventListener("keydown", function (e) {
  if (KEYS[e.key]) { e.preventDefault(); answer(KEYS[e.key]); }
});
load();
</script>
</body>
</html>
"""
