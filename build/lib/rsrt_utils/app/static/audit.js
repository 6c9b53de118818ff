// Caption audit page: remember which variant rows changed, save them (per image or all) and show the progress.
(() => {
  "use strict";
  const root = document.getElementById("audit");
  if (!root || !root.dataset.auditor) return;
  const run = root.dataset.run;
  const auditor = root.dataset.auditor;
  const status = document.getElementById("status");
  const dirty = new Set();

  function setStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle("status-error", Boolean(isError));
  }

  function rowOf(variant) {
    const row = {image_id: variant.closest(".audit-item").dataset.imageId, variant: variant.dataset.variant};
    variant.querySelectorAll("input, select, textarea").forEach((field) => { row[field.name] = field.value; });
    return row;
  }

  function showState(state) {
    document.getElementById("progress").textContent = state.progress;
    document.getElementById("progress-bar").value = state.n_scored_images;
    const scored = new Set(state.scored_image_ids);
    document.querySelectorAll(".audit-item").forEach((item) => {
      const done = scored.has(item.dataset.imageId);
      const badge = item.querySelector(".item-status");
      badge.classList.toggle("done", done);
      badge.textContent = done ? "✓ scored" : "not scored yet";
    });
  }

  async function save(variants) {
    if (variants.length === 0) {
      setStatus("nothing changed since the last save");
      return;
    }
    setStatus("saving…");
    let response;
    try {
      response = await fetch(`/api/audit/${encodeURIComponent(run)}/scores`, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({auditor, rows: variants.map(rowOf)}),
      });
    } catch (error) {
      setStatus(`could not reach the server (${error}); your entries are still on the page, press Save again`, true);
      return;
    }
    const body = await response.json().catch(() => ({detail: `the server answered ${response.status}`}));
    if (!response.ok) {
      setStatus(body.detail || `the server answered ${response.status}`, true);
      return;
    }
    variants.forEach((variant) => { variant.classList.remove("dirty"); dirty.delete(variant); });
    showState(body);
    setStatus(`saved ${variants.length} row(s) to ${body.sheet}`);
  }

  document.querySelectorAll(".variant").forEach((variant) => {
    variant.addEventListener("input", () => {
      variant.classList.add("dirty");
      dirty.add(variant);
      setStatus(`${dirty.size} row(s) not saved yet`);
    });
  });
  document.getElementById("save-all").addEventListener("click", () => save([...dirty]));
  document.querySelectorAll(".audit-item").forEach((item) => {
    item.querySelector(".save-image").addEventListener("click", () => save([...item.querySelectorAll(".variant.dirty")]));
  });
  window.addEventListener("beforeunload", (event) => {
    if (dirty.size > 0) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
})();
