// estrom's page: one live tail over the Tailor's SSE endpoint.  Vanilla JS, no build, no CDN.
// Why the shape: a query is first validated with a short fetch() (EventSource cannot read a 4xx
// body, so errors in words come from there), then streamed with EventSource, which reconnects by
// itself with Last-Event-ID, so the Tailor replays whatever a network blip would have lost.
"use strict";
(function () {
  const MAX_ROWS = 500;        // rows kept in the DOM: the list stays smooth at thousands of hits/min
  const MAX_WAITING = 10000;   // hits held while paused; beyond, they are counted as dropped
  const CHART_SECONDS = 300;   // the rate chart's span
  const API = "/api/v0.1/";
  const $ = (id) => document.getElementById(id);
  // The page carries a tail token on to the API when it was opened with ?access_token=...
  const token = new URLSearchParams(location.search).get("access_token");

  let source = null, counts = null, paused = false, waiting = [], pending = [];
  let droppedHere = 0, total = 0, terms = [], params = null, frame = 0;
  let lastId = "", openedAt = "";  // where a reopened stream resumes from
  const buckets = new Array(CHART_SECONDS).fill(0);
  let bucketSecond = Math.floor(Date.now() / 1000);

  function url(endpoint, extra) {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    if (token) p.set("access_token", token);
    return API + endpoint + "?" + p.toString();
  }

  function showError(body, query) {
    const box = $("query-error");
    box.textContent = "";
    let text = body.message || body.error || "the Tailor refused the query";
    // The part is worth naming when it is not simply the whole query (a DSL clause, a parameter).
    if (body.part && body.part !== query) text += " (in " + body.part + ")";
    if (typeof body.position === "number" && !/position/.test(text)) text += " at position " + body.position;
    box.append(text);
    if (typeof body.position === "number" && query) {
      const pre = document.createElement("pre");
      pre.textContent = query + "\n" + " ".repeat(Math.min(body.position, query.length)) + "^";
      box.append(pre);
    }
    box.hidden = false;
    $("query").setAttribute("aria-invalid", "true");
  }

  function clearError() {
    $("query-error").hidden = true;
    $("query-error").textContent = "";
    $("query").removeAttribute("aria-invalid");
  }

  function notice(text) {
    const div = document.createElement("div");
    div.className = "notice";
    div.textContent = new Date().toLocaleTimeString() + ": " + text;
    const box = $("notices");
    box.prepend(div);
    while (box.children.length > 5) box.lastChild.remove();
  }

  // Terms to mark when a hit carries no _highlight (replayed from before highlights, or a Beater that
  // could not answer): the words of the readable query, without operators and field names.
  function termsOf(readable) {
    const words = (readable || "").match(/"[^"]+"|[^\s()+\-!:"]+(?=\s|\)|$)|[^\s()+\-!"]+/g) || [];
    const out = [];
    for (let w of words) {
      w = w.replace(/^"|"$/g, "").replace(/^[^:]*:/, "").replace(/[*?~^].*$/, "");
      if (w.length > 1 && !/^(AND|OR|NOT|TO)$/.test(w)) out.push(w.toLowerCase());
    }
    return [...new Set(out)];
  }

  // The terms the percolator says matched (hit._highlight: field -> terms), all fields together.
  function termsOfHit(hit) {
    if (!hit._highlight || typeof hit._highlight !== "object") return terms;
    const out = [];
    for (const values of Object.values(hit._highlight)) {
      for (const v of values || []) if (String(v).length) out.push(String(v));
    }
    return [...new Set(out)];
  }

  function highlighted(text, terms) {
    const frag = document.createDocumentFragment();
    if (!terms.length) { frag.append(text); return frag; }
    const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const re = new RegExp("(" + escaped.join("|") + ")", "gi");
    let last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) frag.append(text.slice(last, m.index));
      const mark = document.createElement("mark");
      mark.textContent = m[0];
      frag.append(mark);
      last = m.index + m[0].length;
      if (m[0].length === 0) re.lastIndex++;
    }
    frag.append(text.slice(last));
    return frag;
  }

  function row(hit) {
    const li = document.createElement("li");
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const when = document.createElement("span");
    when.className = "when";
    if (hit._received) {
      // Local time for a person; the exact UTC instant on hover.
      when.textContent = new Date(hit._received).toLocaleTimeString();
      when.title = String(hit._received);
    }
    const marks = termsOfHit(hit);
    summary.append(when, highlighted(JSON.stringify(hit._source !== undefined ? hit._source : hit), marks));
    const pre = document.createElement("pre");
    pre.append(highlighted(JSON.stringify(hit, null, 2), marks));
    details.append(summary, pre);
    li.append(details);
    return li;
  }

  // Hits are rendered once per animation frame, in one fragment, newest on top.
  function render() {
    frame = 0;
    if (!pending.length) return;
    const batch = pending.length > MAX_ROWS ? pending.slice(-MAX_ROWS) : pending;
    pending = [];
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.append(row(batch[i]));
    const list = $("hits");
    list.prepend(frag);
    while (list.children.length > MAX_ROWS) list.lastChild.remove();
    $("total").textContent = String(total);
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  function tick(n) {
    const now = Math.floor(Date.now() / 1000);
    const shift = Math.min(now - bucketSecond, CHART_SECONDS);
    for (let i = 0; i < shift; i++) { buckets.shift(); buckets.push(0); }
    bucketSecond = now;
    buckets[CHART_SECONDS - 1] += n;
  }

  function drawChart() {
    tick(0);
    const canvas = $("chart"), ctx = canvas.getContext("2d");
    // Drawn at the canvas' displayed size, so bars stay crisp on a phone and a wide screen alike.
    const scale = window.devicePixelRatio || 1, shownWidth = Math.round(canvas.clientWidth * scale);
    if (shownWidth && canvas.width !== shownWidth) { canvas.width = shownWidth; canvas.height = Math.round(60 * scale); }
    const w = canvas.width, h = canvas.height, max = Math.max(1, ...buckets);
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#0b5cad";
    const bw = w / CHART_SECONDS;
    buckets.forEach((v, i) => { const bh = (v / max) * (h - 2); ctx.fillRect(i * bw, h - bh, Math.max(bw, 1), bh); });
    ctx.fillStyle = "#586069";
    ctx.font = Math.round(11 * scale) + "px system-ui, sans-serif";
    ctx.fillText("last 5 min · peak " + max + "/s", 4 * scale, 12 * scale);
    // The rate shown is over the last complete 5 seconds, steadier than one second.
    $("rate").textContent = (buckets.slice(-6, -1).reduce((a, b) => a + b, 0) / 5).toFixed(1);
    $("total").textContent = String(total);
    $("waiting").textContent = paused ? " · paused, " + waiting.length + " waiting" + (droppedHere ? ", " + droppedHere + " dropped (buffer full)" : "") : "";
  }

  function onHit(event) {
    let hit;
    try { hit = JSON.parse(event.data); } catch (e) { return; }
    if (event.lastEventId) lastId = event.lastEventId;
    total++;
    tick(1);
    if (paused) {
      if (waiting.length >= MAX_WAITING) { waiting.shift(); droppedHere++; }
      waiting.push(hit);
    } else {
      pending.push(hit);
      schedule();
    }
  }

  function record(kind) {
    return (event) => {
      if (!event.data) return;  // the EventSource's own "error" (a network blip) has no data
      let body = {};
      try { body = JSON.parse(event.data)._estrom || {}; } catch (e) { /* keep {} */ }
      if (kind === "dropped") notice("the Tailor dropped " + (body.dropped || body.missed || "some") + " hits: this page could not keep up");
      else if (kind === "gap") notice("gap: " + (body.message || ((body.missed != null ? body.missed : "an unknown number of") + " hits could not be replayed")));
      else if (kind === "end" && body.end === "max_tail_s") {
        // The Tailor bounds how long one stream lasts: go on where this one stopped, losing nothing.
        notice("the Tailor closed the stream after " + body.max_tail_s + " s; resuming where it stopped");
        open(lastId || openedAt);
      }
      else if (kind === "end") { notice("the tail ended: " + (body.end || body.message || "closed")); $("status").textContent = "ended"; source && source.close(); }
      else notice("error: " + (body.message || JSON.stringify(body)));
    };
  }

  // since: a cursor (the last event id) or an instant; the EventSource's own reconnects send Last-Event-ID.
  function open(since) {
    if (source) source.close();
    if (!since) openedAt = new Date().toISOString();
    const wanted = { format: "sse", highlight: "true" };
    if (since) wanted.since = since;
    source = new EventSource(url("docs", wanted));
    source.addEventListener("subscription", (event) => {
      const body = JSON.parse(event.data)._estrom || {};
      $("subscription-id").textContent = body.subscription_id || "";
      if (body.readable) { $("readable").textContent = body.readable; terms = termsOf(body.readable); }
    });
    source.addEventListener("message", onHit);
    for (const kind of ["dropped", "gap", "end", "error"]) source.addEventListener(kind, record(kind));
    source.onopen = () => { $("status").textContent = "live"; };
    source.onerror = () => {
      if (source.readyState === EventSource.CONNECTING) $("status").textContent = "reconnecting (hits missed meanwhile are replayed)";
      else if (source.readyState === EventSource.CLOSED) $("status").textContent = "closed";
    };
  }

  async function submit(event) {
    event.preventDefault();
    clearError();
    const index = $("index").value.trim(), query = $("query").value;
    params = { i: index, q: query };
    $("tail").disabled = true;
    try {
      // A short probe registers the query and answers a refusal in words (EventSource could not).
      const answer = await fetch(url("docs", { format: "ndjson", limit: "1", timeout: "0.2" }));
      const text = await answer.text();
      if (!answer.ok) {
        let body;
        try { body = JSON.parse(text); } catch (e) { body = { message: "HTTP " + answer.status + ": " + text.slice(0, 200) }; }
        showError(body, query);
        return;
      }
      const first = JSON.parse(text.split("\n")[0])._estrom || {};
      $("readable").textContent = first.readable || query;
      $("subscription-id").textContent = first.subscription_id || "";
      terms = termsOf(first.readable || query);
      $("subscription").hidden = false;
      $("live").hidden = false;
      $("hits").textContent = "";
      if (counts) { counts.close(); counts = null; $("groups").textContent = ""; $("counts-status").textContent = ""; }
      waiting = []; pending = []; droppedHere = 0; total = 0; lastId = ""; buckets.fill(0);
      setPaused(false);
      $("pause").disabled = false;
      $("copy-curl").disabled = false;
      $("status").textContent = "connecting";
      open();
    } catch (e) {
      showError({ message: "the Tailor could not be reached: " + e.message });
    } finally {
      $("tail").disabled = false;
    }
  }

  function setPaused(value) {
    paused = value;
    const button = $("pause");
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", String(paused));
    if (!paused && waiting.length) {
      pending = pending.concat(waiting);
      waiting = [];
      if (droppedHere) notice(droppedHere + " hits dropped while paused (more than " + MAX_WAITING + " waited)");
      droppedHere = 0;
      schedule();
    }
    drawChart();
  }

  function curlCommand() {
    const p = new URLSearchParams(params);
    p.set("format", "ndjson");
    const target = location.origin + API + "docs?" + p.toString();
    const auth = token ? " -H 'Authorization: Bearer " + token.replace(/'/g, "'\\''") + "'" : "";
    return "curl -N" + auth + " '" + target.replace(/'/g, "'\\''") + "'";
  }

  async function copyCurl() {
    const command = curlCommand();
    const box = $("curl");
    box.value = command;
    $("curl-box").hidden = false;  // always visible, so it can be copied by hand if the clipboard refuses
    box.focus();
    box.select();
    try { await navigator.clipboard.writeText(command); $("copy-curl").textContent = "Copied"; }
    catch (e) { $("copy-curl").textContent = "Copy as curl (select the text below)"; }
    setTimeout(() => { $("copy-curl").textContent = "Copy as curl"; }, 2000);
  }

  function countGroups(event) {
    event.preventDefault();
    if (!params) return;
    if (counts) counts.close();
    const by = $("group-by").value.trim();
    const list = $("groups");
    list.textContent = "";
    if (!by) return;
    // provisional: the open window's counts every second (a live view); partial: the window the page opened in counts too.
    counts = new EventSource(url("counts", { format: "sse", window: "10s", by: by, top: "5", provisional: "1s", partial: "true" }));
    counts.onopen = () => { $("counts-status").textContent = "counting by " + by + " over 10 s windows"; };
    counts.addEventListener("message", (e) => {
      let w;
      try { w = JSON.parse(e.data); } catch (err) { return; }
      if (!w.groups) return;
      list.textContent = "";
      for (const g of w.groups) {
        const li = document.createElement("li");
        li.textContent = (g.key === null ? "(none)" : g.key) + ": " + g.count;
        list.append(li);
      }
      if (w.other) { const li = document.createElement("li"); li.textContent = "others: " + w.other; list.append(li); }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("query-form").addEventListener("submit", submit);
    $("pause").addEventListener("click", () => setPaused(!paused));
    $("copy-curl").addEventListener("click", copyCurl);
    $("counts-form").addEventListener("submit", countGroups);
    // Ctrl/Cmd+Enter in the query box submits, as Enter would in a one-line field.
    $("query").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("query-form").requestSubmit();
    });
    const given = new URLSearchParams(location.search);
    if (given.get("i")) $("index").value = given.get("i");
    if (given.get("q")) $("query").value = given.get("q");
    setInterval(drawChart, 1000);
  });
})();
