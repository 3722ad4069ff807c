// The latent explorer's page: plain JavaScript, no build step, no network beyond this page's own server.
// State: the current code z = anchor + Σ_k t_k·scale_k·direction_k (sliders) + Σ_a α_a·vector_a (attributes),
// decoded under `label` for a conditional model.  A new anchor (a map point, an example, random, the class) sets
// the sliders and attributes to 0 and the morph's t back to 0.5, off the path; moving t makes the anchor the
// path's point at t (for a conditional model under A's class for t < 0.5 and B's from 0.5 on, so that t = 0
// decodes A and t = 1 decodes B exactly).  Every image shown is the server's decoding (POST /api/decode) of the
// code named beside it; window.explorer exposes the state for tests (the code and label of the image on screen,
// whether a decode is in flight, the morph's t: null when off the path).
"use strict";

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
const NO_CLASS_COLOUR = "#546e7a";
const MORPH_START = 0.5;
const state = {
  info: null, anchor: null, label: 0, sliders: [], alphas: [], morph: { a: null, b: null, t: null },
  shown: null, shownLabel: null, pending: null, inFlight: false, decodes: 0, errors: 0, hover: false,
};
window.explorer = state;

const $ = (id) => document.getElementById(id);
const add = (a, b, s = 1) => a.map((x, i) => x + s * b[i]);
const dot = (a, b) => a.reduce((t, x, i) => t + x * b[i], 0);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// What a failed action shows: the server's own message, or that the server is gone.
function report(error) {
  state.errors += 1;
  setStatus(error.message, true);
}

async function api(path, body) {
  let response;
  try {
    response = await fetch(path, body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch {
    throw new Error("server stopped: start experiments.explore again, then reload this page");
  }
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(payload.error || `${response.status} ${response.statusText}`);
  return payload;
}

function drawPixels(canvas, image) {
  const [h, w, c] = image.shape;
  const bytes = Uint8Array.from(atob(image.pixels), (ch) => ch.charCodeAt(0));
  canvas.width = w; canvas.height = h;
  const context = canvas.getContext("2d");
  const out = context.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) out.data[4 * p + k] = bytes[p * c + (c === 3 ? k : 0)];
    out.data[4 * p + 3] = 255;
  }
  context.putImageData(out, 0, 0);
}

// "class 7" (or "class 1 (Trouser)") where labels mean classes; "" for a model without classes.
function classText(label) {
  return state.info.has_classes && label !== null && label !== undefined ? state.info.class_labels[label] : "";
}

// "test image #5 · class 7", "noise vector #5": what a map point or an example is.
function pointText(index, label) {
  const what = state.info.has_encoder ? "test image" : "noise vector";
  return [`${what} #${index}`, classText(label)].filter(Boolean).join(" · ");
}

// The code the controls describe.
function currentZ() {
  let z = state.anchor.slice();
  state.info.sliders.forEach((s, k) => { z = add(z, s.direction, state.sliders[k] * s.scale); });
  state.info.attributes.forEach((a, k) => { z = add(z, a.vector, state.alphas[k]); });
  return z;
}

// Decodes z into the main view; requests are coalesced so at most one is in flight and the newest wins.
function show(z, label, caption) {
  state.pending = { z, label, caption };
  if (!state.inFlight) sendNext();
}

function showCode(z) {
  const box = $("view-z");
  box.replaceChildren(document.createTextNode(`z (${z.length}) = `));
  z.forEach((x, i) => {
    const number = Object.assign(document.createElement("span"), { textContent: x.toFixed(2).replace("-", "−") });
    box.append(number, i + 1 < z.length ? " " : "");
  });
}

async function sendNext() {
  const request = state.pending;
  state.pending = null;
  if (!request) return;
  state.inFlight = true;
  try {
    const body = { z: request.z };
    if (state.info.conditional) body.label = request.label;
    const image = await api("/api/decode", body);
    drawPixels($("decoded"), image);
    state.shown = request.z; state.shownLabel = request.label; state.decodes += 1;
    const decodedAs = state.info.conditional ? classText(request.label) : "";
    $("view-caption").textContent = [request.caption, decodedAs && `decoded as ${decodedAs}`].filter(Boolean).join(" · ");
    showCode(request.z);
    setStatus(`${state.decodes} decodes`);
  } catch (error) {
    report(error);
  } finally {
    state.inFlight = false;
    if (state.pending) sendNext();
  }
}

// What the current code is: its anchor, and whether sliders or attributes move it.
function caption() {
  const moved = state.sliders.some((t) => t !== 0) || state.alphas.some((a) => a !== 0);
  return moved ? `${state.anchorText} + sliders` : state.anchorText;
}

function refresh() { show(currentZ(), state.label, caption()); }

function setLabel(label) {
  state.label = label;
  $("label").value = String(label);
}

// The morph's t: a number when the anchor is the path's point at t, null (slider at 0.5) otherwise.
function setMorphT(t) {
  state.morph.t = t;
  $("morph").value = String(t === null ? MORPH_START : t);
  const ready = state.morph.a && state.morph.b;
  $("morph").disabled = !ready;
  $("morph-t").textContent = !ready ? "t: set A and B" : t === null ? "t: off the path (move to follow it)" : `t = ${t.toFixed(2)}`;
}

// A new current code: sliders and attributes to 0, t back to 0.5 off the path.
function setAnchor(z, label, text) {
  state.anchor = z.slice();
  state.anchorText = text;
  if (label !== undefined && label !== null) setLabel(label);
  zeroSliders();
  setMorphT(null);
  refresh();
  drawMap();
}

function zeroSliders() {
  state.sliders.fill(0); state.alphas.fill(0);
  document.querySelectorAll("#sliders input, #attributes input").forEach((input) => {
    input.value = "0"; input.nextElementSibling.textContent = "0.00";
  });
}

// The map: plane coordinates (u, v) <-> canvas pixels, and z = origin + u·axes[0] + v·axes[1].
function mapFrame(points) {
  const us = points.map((p) => p[0]).sort((a, b) => a - b);
  const vs = points.map((p) => p[1]).sort((a, b) => a - b);
  const q = (xs, f) => xs[Math.min(xs.length - 1, Math.max(0, Math.round(f * (xs.length - 1))))];
  let [u0, u1, v0, v1] = [q(us, 0.005), q(us, 0.995), q(vs, 0.005), q(vs, 0.995)];
  const pad = (lo, hi) => { const m = 0.08 * Math.max(hi - lo, 1e-3); return [lo - m, hi + m]; };
  [u0, u1] = pad(u0, u1); [v0, v1] = pad(v0, v1);
  const size = 400;
  return {
    toPixel: ([u, v]) => [((u - u0) / (u1 - u0)) * size, size - ((v - v0) / (v1 - v0)) * size],
    toPlane: (x, y) => [u0 + (x / size) * (u1 - u0), v0 + ((size - y) / size) * (v1 - v0)],
  };
}

function lift([u, v]) {
  const m = state.info.map;
  return add(add(m.origin, m.axes[0], u), m.axes[1], v);
}

function drawMap() {
  const canvas = $("map"), context = canvas.getContext("2d"), m = state.info.map;
  context.clearRect(0, 0, canvas.width, canvas.height);
  m.points.forEach((p, i) => {
    const [x, y] = state.frame.toPixel(p);
    context.fillStyle = m.labels ? COLOURS[m.labels[i] % COLOURS.length] : NO_CLASS_COLOUR;
    context.globalAlpha = 0.7;
    context.fillRect(x - 1.5, y - 1.5, 3, 3);
  });
  context.globalAlpha = 1;
  if (state.anchor) {
    const d = add(currentZ(), m.origin, -1);
    const [x, y] = state.frame.toPixel([dot(d, m.axes[0]), dot(d, m.axes[1])]);
    context.strokeStyle = "#000"; context.lineWidth = 2;
    context.beginPath(); context.arc(x, y, 6, 0, 2 * Math.PI); context.stroke();
  }
}

function nearestPoint(x, y) {
  let best = -1, bestDistance = 36;  // within 6 pixels
  state.info.map.points.forEach((p, i) => {
    const [px, py] = state.frame.toPixel(p);
    const d = (px - x) ** 2 + (py - y) ** 2;
    if (d < bestDistance) { best = i; bestDistance = d; }
  });
  return best;
}

async function choosePoint(index) {
  const point = await api("/api/point", { index });
  $("selected").hidden = false;
  $("selected-caption").textContent = `Chosen: ${pointText(index, point.label)}`;
  if (point.image) drawPixels($("selected-image"), point.image);
  $("selected-image").parentElement.hidden = !point.image;
  $("selected-decoded-caption").textContent = point.image ? "its reconstruction" : "decoded";
  drawPixels($("selected-decoded"), point.decoded);
  setAnchor(point.code, point.label, pointText(index, point.label));
}

function slider(container, name, min, max, step, onInput) {
  const row = document.createElement("label");
  row.className = "slider";
  const input = Object.assign(document.createElement("input"), { type: "range", min, max, step, value: "0" });
  const value = Object.assign(document.createElement("span"), { textContent: "0.00" });
  row.append(Object.assign(document.createElement("span"), { textContent: name, title: name }), input, value);
  input.addEventListener("input", () => { value.textContent = Number(input.value).toFixed(2); onInput(Number(input.value)); });
  container.append(row);
  return input;
}

function pathPoint(a, b, t, spherical) {
  if (spherical) {
    const na = Math.sqrt(dot(a, a)), nb = Math.sqrt(dot(b, b));
    const omega = Math.acos(Math.min(1, Math.max(-1, dot(a, b) / (na * nb || 1))));
    if (omega > 1e-4) {
      const s = Math.sin(omega);
      return a.map((x, i) => (Math.sin((1 - t) * omega) / s) * x + (Math.sin(t * omega) / s) * b[i]);
    }
  }
  return a.map((x, i) => (1 - t) * x + t * b[i]);
}

async function setEnd(end) {
  const code = { z: currentZ(), label: state.label };
  const body = { z: code.z };
  if (state.info.conditional) body.label = code.label;
  drawPixels($(`morph-${end}`), await api("/api/decode", body));
  state.morph[end] = code;
  const decodedAs = state.info.conditional ? ` · ${classText(code.label)}` : "";
  $(`morph-${end}-caption`).textContent = `${end.toUpperCase()}${decodedAs}`;
  setMorphT(null);  // a new path: the current code is not on it until t moves
}

function morphTo(t) {
  const { a, b } = state.morph;
  const spherical = document.querySelector("input[name=path]:checked").value === "spherical";
  state.anchor = t === 0 ? a.z.slice() : t === 1 ? b.z.slice() : pathPoint(a.z, b.z, t, spherical);
  if (state.info.conditional) setLabel(t < 0.5 ? a.label : b.label);
  state.anchorText = `morph A→B at t = ${t.toFixed(2)} (${spherical ? "spherical" : "linear"})`;
  zeroSliders();
  setMorphT(t);
  refresh();
  drawMap();
}

function gaussian() {  // Box–Muller
  const u = 1 - Math.random(), v = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

// Runs an event handler, reporting its failure on the page instead of as an uncaught error.
const guarded = (handler) => (event) => { Promise.resolve().then(() => handler(event)).catch(report); };

function build(info) {
  state.info = info;
  state.sliders = info.sliders.map(() => 0);
  state.alphas = info.attributes.map(() => 0);
  $("run").textContent = `${info.run}: ${info.family}, step ${info.step}, ${info.dataset}, latent ${info.latent_dim}` +
    (info.conditional ? ", conditional" : "");
  $("map-how").textContent = `(${info.map.source}; ${info.map.how}${info.has_classes ? "; colour: class" : ""})`;
  $("slider-how").textContent = "(units: the codes' standard deviation along each)";
  info.class_labels.forEach((text, k) => {
    $("label").append(Object.assign(document.createElement("option"), { value: String(k), textContent: text }));
    if (info.has_classes) {
      const item = document.createElement("span");
      item.innerHTML = `<i style="background:${COLOURS[k % COLOURS.length]}"></i>`;
      item.append(info.class_names[k]);
      $("legend").append(item);
    }
  });
  $("label-row").hidden = !info.conditional;
  if (info.conditional) {
    $("morph-help").append(" A and B keep their classes: the class switches from A's to B's at t = 0.5.");
  }
  $("examples-how").textContent = `(${info.has_encoder ? "test images" : "decoded noise vectors"}; click one)`;
  $("label").addEventListener("change", () => {
    setAnchor(currentZ(), Number($("label").value), state.morph.t === null ? state.anchorText : "the morph's code");
  });
  info.examples.forEach((example) => {
    const canvas = document.createElement("canvas");
    canvas.title = pointText(example.index, example.label);
    canvas.dataset.index = String(example.index);
    drawPixels(canvas, example);
    canvas.addEventListener("click", guarded(() => choosePoint(example.index)));
    $("examples").append(canvas);
  });
  info.sliders.forEach((s, k) => slider($("sliders"), s.name, -3, 3, 0.05, (t) => { state.sliders[k] = t; refresh(); drawMap(); }));
  if (!info.attributes.length) $("attributes").textContent = info.has_encoder ? "none for this data set" : "need an encoder";
  info.attributes.forEach((a, k) => slider($("attributes"), a.name, -2, 2, 0.05, (t) => { state.alphas[k] = t; refresh(); drawMap(); }));

  state.frame = mapFrame(info.map.points);
  const map = $("map");
  const where = (event) => { const r = map.getBoundingClientRect(); return [(event.clientX - r.left) * (400 / r.width), (event.clientY - r.top) * (400 / r.height)]; };
  map.addEventListener("pointermove", (event) => {
    state.hover = true;
    const [u, v] = state.frame.toPlane(...where(event));
    show(lift([u, v]), state.label, `map point (${u.toFixed(2)}, ${v.toFixed(2)})`);
  });
  map.addEventListener("pointerleave", () => { state.hover = false; refresh(); });
  map.addEventListener("click", guarded((event) => {
    const [x, y] = where(event), index = nearestPoint(x, y);
    if (index >= 0) return choosePoint(index);
    const [u, v] = state.frame.toPlane(x, y);
    setAnchor(lift([u, v]), undefined, `map point (${u.toFixed(2)}, ${v.toFixed(2)})`);
  }));
  $("random").addEventListener("click", () => setAnchor(info.start.map(() => gaussian()), undefined, "random z ~ N(0, I)"));
  $("reset").addEventListener("click", () => { zeroSliders(); refresh(); drawMap(); });
  for (const end of ["a", "b"]) $(`set-${end}`).addEventListener("click", guarded(() => setEnd(end)));
  $("morph").addEventListener("input", () => morphTo(Number($("morph").value)));
  document.querySelectorAll("input[name=path]").forEach((r) => r.addEventListener("change", () => {
    if (state.morph.t !== null) morphTo(state.morph.t);
  }));
  setLabel(info.start_label);
  setMorphT(null);
  setAnchor(info.start, info.start_label, pointText(0, info.has_classes ? info.start_label : null));
}

api("/api/info").then(build).catch((error) => { report(error); setStatus(`could not load: ${error.message}`, true); });
