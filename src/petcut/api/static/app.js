// petcut web page: upload a pet photo, get the cut-out and print effects. No framework, no build step.
// Every URL is relative to this page (served at /ui/), so the page works behind a path prefix too.
"use strict";

(function () {
  // The registry's identity effect ("the cut-out in its own colours"): requested with the effects and
  // shown as the cut-out. If a registry ever lacks it, the cut-out comes from remove-background.
  const CUTOUT_EFFECT = "color";
  const MAX_RETRIES = 30; // automatic retries of one photo while the model warms up
  const MAX_RETRY_AFTER_S = 120; // a longer Retry-After (or a 429 that long) is shown, not waited for
  const FAILED_CODES = new Set(["model_unavailable", "device_fault"]); // 503s that retrying soon will not fix
  const POLL_READY_MS = 15000;
  const POLL_NOT_READY_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const api = (path) => new URL("../" + path, document.baseURI).toString();

  const els = {
    form: $("form"), file: $("file"), fileName: $("file-name"), drop: $("drop-zone"),
    effects: $("effects-list"), process: $("process"), cancel: $("cancel"), alert: $("alert"),
    progressPanel: $("progress-panel"), progress: $("progress"), progressText: $("progress-text"),
    results: $("results"), summary: $("results-summary"), grid: $("result-grid"),
    before: $("compare-before"), after: $("compare-after"), afterImg: $("compare-after-img"),
    range: $("compare-range"), divider: $("compare-divider"), stage: $("compare-stage"),
    state: $("model-state"), stateText: $("model-state-text"), version: $("version"),
  };

  let registry = null; // [{name, description, params}]
  let photo = null; // the chosen File
  let job = null; // the request in progress: {xhr, timer, ticker, cancelled}
  let resultUrls = []; // object URLs to revoke when results are replaced
  let pollTimer = null;
  let effectsLoading = false;

  // --- messages --------------------------------------------------------------------------------
  function showError(message) {
    els.alert.textContent = message;
  }

  function clearError() {
    els.alert.textContent = "";
  }

  /** The person-facing message of the API's JSON envelope, or a fallback that names the status. */
  function errorMessage(body, status) {
    if (body && body.error && typeof body.error.message === "string" && body.error.message) {
      return body.error.message;
    }
    if (body && typeof body.detail === "string") return body.detail;
    if (status === 0) return "Could not reach petcut (network error). Check the connection and try again.";
    return "The request failed (HTTP " + status + ").";
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  // --- the model's state -----------------------------------------------------------------------
  function setModelState(kind, text) {
    els.state.dataset.state = kind;
    els.stateText.textContent = text;
  }

  async function getJson(path) {
    const response = await fetch(api(path), { cache: "no-store", headers: { Accept: "application/json" } });
    return { response, body: await response.json().catch(() => null) };
  }

  async function pollModelState() {
    clearTimeout(pollTimer);
    let ready = false;
    try {
      const health = await getJson("health");
      if (health.body && health.body.version) els.version.textContent = "petcut " + health.body.version;
      const readiness = await getJson("ready");
      const body = readiness.body || {};
      const state = body.status || (health.body && health.body.model_status) || "unknown";
      const reason = (body.error && body.error.message) || body.reason || "";
      if (readiness.response.ok) {
        ready = true;
        setModelState("ready", "Model ready");
      } else if (state === "failed" || state === "poisoned") {
        setModelState("failed", "Model failed: " + reason);
      } else if (state === "not_loaded") {
        setModelState("loading", "Model not loaded yet: it loads with the first photo");
      } else if (state === "loading" || state === "warming") {
        setModelState("loading", state === "warming" ? "Model loading: warming up…" : "Model loading…");
      } else if (state === "degraded") {
        setModelState("busy", "Model busy: " + reason);
      } else if (state === "draining") {
        setModelState("busy", "Service restarting: " + reason);
      } else {
        setModelState("loading", "Model: " + state);
      }
      if (!registry) loadEffects();
    } catch (e) {
      setModelState("unreachable", "Service unreachable; checking again…");
    }
    const delay = ready ? POLL_READY_MS : POLL_NOT_READY_MS;
    pollTimer = setTimeout(pollModelState, document.hidden ? Math.max(delay, POLL_READY_MS) : delay);
  }

  // --- effects, from the registry --------------------------------------------------------------
  async function loadEffects() {
    if (effectsLoading) return;
    effectsLoading = true;
    let result;
    try {
      result = await getJson("api/v2/effects");
    } catch (e) {
      els.effects.innerHTML = '<p class="hint">The effects could not be loaded; retrying…</p>';
      return;
    } finally {
      effectsLoading = false;
    }
    if (!result.response.ok || !result.body || !Array.isArray(result.body.effects)) {
      showError(errorMessage(result.body, result.response.status));
      return;
    }
    registry = result.body.effects;
    const fallback = result.body.default;
    els.effects.textContent = "";
    for (const effect of registry) {
      if (effect.name === CUTOUT_EFFECT) continue;
      const id = "effect-" + effect.name;
      const row = document.createElement("div");
      row.className = "effect";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "effect";
      box.value = effect.name;
      box.id = id;
      box.checked = effect.name === fallback;
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = effect.name;
      row.append(box, label);
      if (effect.description) {
        const description = document.createElement("span");
        description.className = "hint effect-description";
        description.id = id + "-description";
        description.textContent = effect.description;
        box.setAttribute("aria-describedby", description.id);
        row.append(description);
      }
      els.effects.append(row);
    }
  }

  function selectedEffects() {
    return Array.from(els.effects.querySelectorAll("input[name=effect]:checked"), (box) => box.value);
  }

  function hasCutoutEffect() {
    return !registry || registry.some((effect) => effect.name === CUTOUT_EFFECT);
  }

  // --- choosing a photo ------------------------------------------------------------------------
  function choose(file) {
    if (!file) return;
    photo = file;
    els.fileName.textContent = file.name + " (" + formatBytes(file.size) + ")";
    start();
  }

  function formatBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function stem(name) {
    const base = (name || "photo").replace(/\.[^.]*$/, "") || "photo";
    return base.replace(/[^\w\-]+/g, "_");
  }

  // --- processing ------------------------------------------------------------------------------
  function start() {
    if (!photo) {
      showError("Choose a photo first.");
      els.file.focus();
      return;
    }
    stop();
    clearError();
    const names = selectedEffects();
    const request = hasCutoutEffect() ? [CUTOUT_EFFECT, ...names] : names;
    if (!request.length) {
      showError("Tick at least one effect.");
      return;
    }
    job = { started: performance.now(), attempts: 0, cancelled: false, names, request, file: photo };
    els.cancel.hidden = false;
    els.process.disabled = true;
    els.progressPanel.hidden = false;
    job.ticker = setInterval(tick, 200);
    send(job);
  }

  function stop() {
    if (!job) return;
    job.cancelled = true;
    if (job.xhr) job.xhr.abort();
    clearTimeout(job.timer);
    clearInterval(job.ticker);
    clearInterval(job.countdown);
    job = null;
    els.cancel.hidden = true;
    els.process.disabled = false;
    els.progressPanel.hidden = true;
  }

  function elapsed(current) {
    return ((performance.now() - current.started) / 1000).toFixed(1) + " s";
  }

  function tick() {
    if (!job || job.phase === "waiting") return;
    if (job.phase === "uploading") {
      els.progressText.textContent = "Uploading… " + (job.uploaded || 0) + " %, " + elapsed(job);
    } else {
      els.progressText.textContent = "Removing the background… " + elapsed(job);
    }
  }

  function indeterminate() {
    els.progress.removeAttribute("value");
  }

  function send(current) {
    current.attempts += 1;
    current.phase = "uploading";
    current.uploaded = 0;
    els.progress.value = 0;
    const query = new URLSearchParams({ return_all_effects: "true", effects: current.request.join(",") });
    const form = new FormData();
    form.append("file", current.file, current.file.name || "photo");
    form.append("effects", current.request.join(","));
    const xhr = new XMLHttpRequest();
    current.xhr = xhr;
    xhr.open("POST", api("api/v2/process-with-effects?" + query));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable || current !== job) return;
      current.uploaded = Math.round((100 * event.loaded) / event.total);
      els.progress.value = current.uploaded;
    };
    xhr.upload.onload = () => {
      if (current !== job) return;
      current.phase = "processing";
      indeterminate();
      tick();
    };
    xhr.onload = () => {
      if (current === job) answered(current, xhr.status, parseJson(xhr.responseText), xhr);
    };
    xhr.onerror = () => {
      if (current === job) answered(current, 0, null, xhr);
    };
    xhr.send(form);
    tick();
  }

  function answered(current, status, body, xhr) {
    if (status === 200 && body && body.success && body.effects) {
      finish(current, body);
      return;
    }
    if (status === 503 || status === 429) {
      const code = body && body.error ? body.error.code : "";
      const retryAfter = Math.max(1, parseInt(xhr.getResponseHeader("Retry-After"), 10) ||
        (body && body.retry_after) || 5);
      if (FAILED_CODES.has(code)) {
        setModelState("failed", "Model failed: " + errorMessage(body, status));
      } else if (current.attempts < MAX_RETRIES && retryAfter <= MAX_RETRY_AFTER_S) {
        retryLater(current, code, retryAfter, errorMessage(body, status));
        return;
      }
    }
    stop();
    showError(errorMessage(body, status));
    pollModelState();
  }

  function retryLater(current, code, seconds, message) {
    current.phase = "waiting";
    indeterminate();
    const loading = code === "model_loading";
    if (loading) setModelState("loading", "Model loading…");
    const until = performance.now() + seconds * 1000;
    const show = () => {
      const left = Math.max(0, Math.ceil((until - performance.now()) / 1000));
      els.progressText.textContent = (loading ? "Model loading, retrying in " : message + " Retrying in ") +
        left + " s (attempt " + (current.attempts + 1) + "; " + elapsed(current) + " since the upload started)";
    };
    show();
    current.countdown = setInterval(show, 250);
    current.timer = setTimeout(() => {
      clearInterval(current.countdown);
      if (current === job) send(current);
    }, seconds * 1000);
    pollModelState();
  }

  // --- results ---------------------------------------------------------------------------------
  /** A base64 PNG (or a data: URL, which the contract allows too) → Blob. */
  function toBlob(value, fallbackType) {
    let type = fallbackType;
    let data = value;
    if (value.startsWith("data:")) {
      const comma = value.indexOf(",");
      type = value.slice(5, comma).split(";")[0] || type;
      data = value.slice(comma + 1);
    }
    const binary = atob(data);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return new Blob([bytes], { type });
  }

  async function finish(current, body) {
    const seconds = elapsed(current);
    const format = body.format || "png";
    const type = format === "jpeg" ? "image/jpeg" : "image/" + format;
    const blobs = {};
    for (const [name, value] of Object.entries(body.effects)) blobs[name] = toBlob(value, type);
    let cutout = blobs[CUTOUT_EFFECT];
    if (!cutout) cutout = await fetchCutout(current.file);
    if (current !== job) return;
    stop();
    for (const url of resultUrls) URL.revokeObjectURL(url);
    resultUrls = [];
    const base = stem(current.file.name);
    const items = [];
    if (cutout) items.push({ key: "cutout", title: "Cut-out", blob: cutout });
    for (const name of current.names) {
      if (blobs[name]) items.push({ key: name, title: name, blob: blobs[name] });
    }
    els.grid.textContent = "";
    for (const item of items) els.grid.append(card(item, base, format));

    const original = URL.createObjectURL(current.file);
    resultUrls.push(original);
    els.stage.classList.remove("no-original");
    els.before.src = original;
    els.stage.parentElement.hidden = !cutout;
    if (cutout) els.afterImg.src = items[0].url;
    setCompare(els.range.value);

    const server = body.processing_time && body.processing_time.total;
    let summary = "Done in " + seconds + (server !== undefined ? " (server " + server.toFixed(2) + " s)" : "") + ".";
    if (body.failed_effects && body.failed_effects.length) {
      summary += " These effects failed: " + body.failed_effects.join(", ") + ".";
    }
    els.summary.textContent = summary;
    els.results.hidden = false;
    setModelState("ready", "Model ready");
  }

  async function fetchCutout(file) {
    const form = new FormData();
    form.append("file", file, file.name || "photo");
    try {
      const response = await fetch(api("api/v2/remove-background"), { method: "POST", body: form });
      if (response.ok) return await response.blob();
      showError(errorMessage(await response.json().catch(() => null), response.status));
    } catch (e) {
      showError(errorMessage(null, 0));
    }
    return null;
  }

  function card(item, base, format) {
    item.url = URL.createObjectURL(item.blob);
    resultUrls.push(item.url);
    const li = document.createElement("li");
    li.className = "result-card";
    li.dataset.effect = item.key;
    const figure = document.createElement("figure");
    const frame = document.createElement("div");
    frame.className = "checker result-frame";
    const img = document.createElement("img");
    img.src = item.url;
    img.alt = item.title + " of " + base;
    frame.append(img);
    const caption = document.createElement("figcaption");
    caption.textContent = item.title;
    figure.append(frame, caption);
    const link = document.createElement("a");
    link.className = "button";
    link.href = item.url;
    link.download = base + "-" + item.key + "." + (format === "jpeg" ? "jpg" : format);
    link.textContent = "Download " + item.title.toLowerCase();
    li.append(figure, link);
    return li;
  }

  // --- before / after --------------------------------------------------------------------------
  function setCompare(value) {
    const pos = Math.min(100, Math.max(0, Number(value) || 0));
    els.after.style.clipPath = "inset(0 0 0 " + pos + "%)";
    els.divider.style.left = pos + "%";
    els.range.setAttribute("aria-valuetext", pos + "% original, " + (100 - pos) + "% cut-out");
  }

  // --- wiring ----------------------------------------------------------------------------------
  els.file.addEventListener("change", () => choose(els.file.files[0]));
  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    start();
  });
  els.cancel.addEventListener("click", () => {
    stop();
    els.process.focus();
  });
  els.range.addEventListener("input", () => setCompare(els.range.value));
  els.before.addEventListener("error", () => {
    if (els.before.getAttribute("src")) els.stage.classList.add("no-original"); // e.g. HEIC: no preview
  });

  for (const type of ["dragenter", "dragover"]) {
    els.drop.addEventListener(type, (event) => {
      event.preventDefault();
      els.drop.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    els.drop.addEventListener(type, () => els.drop.classList.remove("dragging"));
  }
  els.drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) return;
    try {
      els.file.files = files; // keeps the input in step with what is processed
    } catch (e) {
      /* older browsers: the input just stays as it was */
    }
    choose(files[0]);
  });
  // a photo dropped next to the zone must not make the browser navigate away from the page
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) pollModelState();
  });

  setCompare(els.range.value);
  loadEffects();
  pollModelState();
})();
