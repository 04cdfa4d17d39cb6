// Filters the model table as you type; the same filters work without JavaScript as a GET form.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("model-filters");
  const rows = Array.from(document.querySelectorAll("#model-table tr[data-model]"));
  const count = document.getElementById("model-count");
  const none = document.getElementById("no-models");
  if (!form) return;

  function apply() {
    const text = form.q.value.trim().toLowerCase();
    const minContext = Number(form.min_context.value || 0);
    const maxPrice = form.max_price.value === "" ? Infinity : Number(form.max_price.value);
    const wanted = Array.from(form.querySelectorAll("input[name=param]:checked")).map((i) => i.value);
    const servedOnly = form.served.checked;
    let shown = 0;
    rows.forEach((row) => {
      const params = row.dataset.params.split(" ");
      const ok = (!text || row.dataset.text.includes(text))
        && Number(row.dataset.context) >= minContext
        && Number(row.dataset.price) <= maxPrice
        && (!servedOnly || row.dataset.served === "1")
        && wanted.every((p) => params.includes(p));
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    count.textContent = shown + " of " + rows.length;
    none.hidden = shown > 0;
    const query = new URLSearchParams(new FormData(form));
    for (const [k, v] of Array.from(query.entries())) if (v === "" || (k === "min_context" && v === "0")) query.delete(k);
    const qs = query.toString();
    history.replaceState(null, "", "/models" + (qs ? "?" + qs : ""));
  }

  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
});
