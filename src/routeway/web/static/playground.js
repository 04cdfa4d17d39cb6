// The chat playground: streams POST /api/v1/chat/completions with fetch() and a ReadableStream, parses the
// server-sent events itself, and shows reasoning (collapsible), the answer, tool calls, tokens and cost.
"use strict";

(function () {
  const csrf = document.body.dataset.csrf;
  const $ = (id) => document.getElementById(id);
  const transcript = $("transcript");
  if (!transcript) return;
  const messages = [];
  let apiKey = null;
  let controller = null;

  const WEATHER_TOOL = {
    type: "function",
    function: {
      name: "get_weather",
      description: "Get the current weather in a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  };

  async function key() {
    // One short-lived key per dashboard session, minted by the server (see web/playground.py).
    if (apiKey) return apiKey;
    const response = await fetch("/playground/key", {
      method: "POST", headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" }, body: "{}",
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error("Could not get a playground key (HTTP " + response.status + "): reload the page.");
    const data = await response.json();
    apiKey = data.key;
    $("pg-key-note").textContent = "Using the key “" + data.name + "” (" + data.label + "), valid until "
      + String(data.expires_at).slice(0, 16).replace("T", " ") + " UTC and deleted when you sign out.";
    return apiKey;
  }

  function add(templateId) {
    $("transcript-empty")?.remove();
    const node = $(templateId).content.firstElementChild.cloneNode(true);
    transcript.appendChild(node);
    return node;
  }

  function body(model) {
    const request = { model: model, messages: messages.slice(), stream: true };
    const max = Number($("pg-max").value);
    if (max > 0) request.max_tokens = max;
    request.reasoning = $("pg-reasoning").checked ? { effort: $("pg-effort").value } : { enabled: false };
    if ($("pg-tools").checked) request.tools = [WEATHER_TOOL];
    return request;
  }

  // One answer's view: text is collected in strings and painted once per animation frame.
  function answerView(node) {
    const state = { reasoning: "", content: "", tools: [], painted: false };
    const paint = () => {
      state.painted = false;
      if (state.reasoning) {
        node.querySelector(".reasoning").hidden = false;
        node.querySelector(".reasoning-text").textContent = state.reasoning;
      }
      node.querySelector(".msg-text").textContent = state.content;
      if (state.tools.length) {
        const box = node.querySelector(".tool-calls");
        box.hidden = false;
        box.innerHTML = "";
        state.tools.forEach((t) => {
          const item = document.createElement("div");
          item.className = "tool-call";
          const title = document.createElement("strong");
          title.textContent = "Tool call: " + (t.name || "?");
          const args = document.createElement("pre");
          args.textContent = t.arguments;
          item.append(title, args);
          box.appendChild(item);
        });
      }
      transcript.scrollTop = transcript.scrollHeight;
    };
    state.schedule = () => { if (!state.painted) { state.painted = true; requestAnimationFrame(paint); } };
    state.flush = paint;
    return state;
  }

  function onChunk(chunk, view, node) {
    if (chunk.error) throw new Error(chunk.error.message || "The stream failed.");
    if (chunk.model) node.querySelector(".msg-model").textContent = chunk.model + (chunk.provider ? " via " + chunk.provider : "");
    const choice = (chunk.choices || [])[0];
    if (choice && choice.delta) {
      const d = choice.delta;
      if (d.reasoning) view.reasoning += d.reasoning;
      if (d.content) view.content += d.content;
      (d.tool_calls || []).forEach((call) => {
        const slot = view.tools[call.index || 0] || (view.tools[call.index || 0] = { name: "", arguments: "" });
        if (call.function && call.function.name) slot.name = call.function.name;
        if (call.function && call.function.arguments) slot.arguments += call.function.arguments;
      });
      view.schedule();
    }
    if (chunk.usage && !(chunk.choices || []).length) showUsage(node, chunk.usage);
  }

  function showUsage(node, usage) {
    const parts = [usage.prompt_tokens + " prompt", usage.completion_tokens + " completion"];
    const reasoning = usage.completion_tokens_details && usage.completion_tokens_details.reasoning_tokens;
    if (reasoning) parts.push(reasoning + " reasoning");
    parts.push("cost $" + (usage.cost != null ? Number(usage.cost).toFixed(8).replace(/0+$/, "").replace(/\.$/, "") : "?"));
    const box = node.querySelector(".msg-usage");
    box.hidden = false;
    box.textContent = "Tokens: " + parts.join(" · ");
  }

  async function readEvents(response, handle) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const boundary = /\r?\n\r?\n/;
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let match;
      while ((match = boundary.exec(buffer)) !== null) {
        const raw = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        const data = raw.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue; // ": OPENROUTER PROCESSING" comments keep the connection alive
        if (data === "[DONE]") return;
        handle(JSON.parse(data));
      }
    }
  }

  async function send(text) {
    const model = $("pg-model").value;
    const user = add("tpl-user");
    user.querySelector(".msg-text").textContent = text;
    messages.push({ role: "user", content: text });
    const node = add("tpl-assistant");
    node.dataset.state = "streaming";
    const view = answerView(node);
    controller = new AbortController();
    $("pg-send").disabled = true;
    $("pg-stop").disabled = false;
    try {
      const response = await fetch("/api/v1/chat/completions", {
        method: "POST", signal: controller.signal,
        headers: { "Authorization": "Bearer " + await key(), "Content-Type": "application/json",
                   "X-Title": "routeway playground" },
        body: JSON.stringify(body(model)),
      });
      if (!response.ok) {
        const payload = await response.json().catch(() => ({}));
        throw new Error((payload.error && payload.error.message) || "HTTP " + response.status);
      }
      const generation = response.headers.get("x-generation-id");
      await readEvents(response, (chunk) => onChunk(chunk, view, node));
      view.flush();
      if (generation) {
        const link = document.createElement("a");
        link.href = "/activity/generations/" + encodeURIComponent(generation);
        link.textContent = " · details";
        node.querySelector(".msg-usage").appendChild(link);
      }
      messages.push({ role: "assistant", content: view.content });
      node.dataset.state = "done";
    } catch (error) {
      view.flush();
      const box = node.querySelector(".msg-error");
      box.hidden = false;
      box.textContent = error.name === "AbortError" ? "Stopped." : error.message;
      node.dataset.state = "error";
    } finally {
      controller = null;
      $("pg-send").disabled = false;
      $("pg-stop").disabled = true;
    }
  }

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("pg-message");
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = "";
    send(text);
  });
  $("pg-message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("composer").requestSubmit();
  });
  $("pg-stop").addEventListener("click", () => controller && controller.abort());
  $("pg-clear").addEventListener("click", () => {
    messages.length = 0;
    transcript.querySelectorAll(".msg").forEach((m) => m.remove());
  });
  $("pg-reasoning").addEventListener("change", () => { $("pg-effort").disabled = !$("pg-reasoning").checked; });
  $("chat-form").addEventListener("submit", (e) => e.preventDefault());
})();
