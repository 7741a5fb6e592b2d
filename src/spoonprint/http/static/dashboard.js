// spoonprint dashboard. Plain JavaScript, no build step, nothing loaded from elsewhere.
// Everything shown is put in the page as text (textContent / Text nodes), never as HTML:
// order numbers, printer messages and the paths scanners try all come from outside.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  let offset = 0; // this device's clock minus the server's, in seconds
  let source = null;
  let retryDelay = 2000;
  let dialogJob = null;

  // -- building the page ---------------------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "on") {
        for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
      } else node.setAttribute(key, String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const TONES = {
    ok: "ok", printed: "ok", sent: "ok", closed: "ok", live: "ok", fixed: "ok",
    dashboard_sign_in: "ok", unblocked: "ok",
    recovering: "warn", unknown: "warn", queued: "warn", printing: "warn", held: "warn",
    "half-open": "warn", connecting: "warn", reconnecting: "warn", strike: "warn",
    rate_limited: "warn", slow_headers: "warn",
    "needs-attention": "bad", offline: "bad", failed: "bad", open: "bad", out: "bad",
    lost: "bad", "not fixed": "bad", blocked: "bad", refused: "bad",
  };
  const LABELS = {
    ok: "OK",
    "needs-attention": "needs attention",
    unknown: "not checked yet",
    closed: "printing",
    open: "pausing after failures",
    "half-open": "trying again",
    dashboard_sign_in: "signed in",
    rate_limited: "rate limited",
    slow_headers: "slow headers",
  };

  function badge(value, label, tone) {
    return el("span", {
      class: "badge", "data-state": value, "data-tone": tone || TONES[value] || "idle",
      text: label || LABELS[value] || value,
    });
  }

  const PAPER = { ok: ["ok", "ok"], out: ["OUT", "bad"], unknown: ["not reported", "idle"] };

  function button(label, handler, className = "small") {
    return el("button", { type: "button", class: className, text: label, on: { click: handler } });
  }

  function fact(term, ...value) {
    return [el("dt", { text: term }), el("dd", {}, ...value)];
  }

  // -- time ----------------------------------------------------------------------------------

  const serverNow = () => Date.now() / 1000 - offset;

  function ago(ts) {
    if (ts === null || ts === undefined) return "–";
    const seconds = Math.max(0, serverNow() - ts);
    if (seconds < 60) return `${Math.round(seconds)} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor(seconds / 60) % 60} min ago`;
    return when(ts);
  }

  function when(ts) {
    if (ts === null || ts === undefined) return "–";
    const date = new Date((ts + offset) * 1000);
    const today = new Date().toDateString() === date.toDateString();
    const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return today ? time : `${date.toLocaleDateString()} ${time}`;
  }

  function agoNode(ts) {
    return el("time", { "data-ago": ts, text: ago(ts) });
  }

  function refreshTimes() {
    for (const node of document.querySelectorAll("[data-ago]")) {
      node.textContent = ago(Number(node.dataset.ago));
    }
  }

  // -- rendering the state ---------------------------------------------------------------------

  function render(state) {
    renderPrinters(state.printers);
    renderQueue(state.queue);
    renderJobs($("recent-jobs"), state.jobs, "No orders yet.");
    renderRecovery(state.recovery);
    renderSecurity(state.security);
    const trouble = state.printers.filter((p) => p.status !== "ok" && p.status !== "unknown");
    document.title = trouble.length ? `⚠ ${trouble.map((p) => p.name).join(", ")} · spoonprint` : "spoonprint";
  }

  function renderPrinters(printers) {
    $("printers").replaceChildren(...printers.map((p) => {
      const advice = p.advice.length ? p.advice : p.problem ? [p.problem] : [];
      return el("article", { class: "printer-card", "data-printer": p.name, "data-status": p.status },
        el("div", { class: "printer-name" },
          el("strong", { text: p.name + (p.default ? " (default)" : "") }),
          badge(p.status)),
        ...advice.map((text) => el("p", { class: "advice", text })),
        el("dl", { class: "facts" },
          ...fact("Paper", badge(p.paper, ...PAPER[p.paper])),
          ...fact("Tickets", badge(p.breaker),
            p.breaker === "open" && p.retry_at ? ` retry at ${when(p.retry_at)}` : null),
          ...fact("Waiting", String(p.queued)),
          ...fact("Last printed", agoNode(p.last_printed_at)),
          ...(p.down_since ? fact("Down since", agoNode(p.down_since)) : []),
          ...(p.last_error ? fact("Last error", p.last_error) : []),
          ...(p.backup ? fact("Backup", p.backup) : []),
          ...fact("Address", p.address)),
        el("div", { class: "actions" },
          button("Check & fix", (event) => act(event.target, "/dashboard/api/recovery/trigger",
            { printer: p.name }))));
    }));
  }

  function renderQueue(queue) {
    $("queue-depth").textContent = String(queue.depth);
    $("queue-held").textContent = String(queue.held);
    $("queue-failed").textContent = String(queue.failed);
    const oldest = queue.oldest;
    $("queue-oldest").replaceChildren(...(oldest
      ? ["Oldest waiting: ", el("strong", { text: oldest.order || `job ${oldest.id}` }),
        ` on ${oldest.printer}, ordered `, agoNode(oldest.created_at)]
      : ["Nothing is waiting to print."]));
    const release = $("release-held");
    release.hidden = queue.held === 0;
    release.textContent = `Print held orders (${queue.held})`;
  }

  function jobRow(job) {
    const label = job.order || `job ${job.id}`;
    const what = [job.reprint_of ? `reprint of #${job.reprint_of} · ` : "", job.summary].join("");
    return el("tr", { "data-job-id": job.id, on: { click: () => openJob(job.id) } },
      el("td", { class: "id", text: `#${job.id}` }),
      el("td", { class: "order" }, label,
        job.maybe_printed ? el("span", { class: "tag", text: "REPRINT" }) : null),
      el("td", { class: "printer", text: job.printer }),
      el("td", { class: "state" }, badge(job.state)),
      el("td", { class: "time" }, el("time", { text: when(job.created_at) })),
      el("td", { class: "what", title: what, text: what }),
      el("td", { class: "buttons" },
        job.can_reprint ? button("Reprint", (event) => { event.stopPropagation(); reprint(job, event.target); }) : null,
        job.can_cancel ? button("Cancel", (event) => { event.stopPropagation(); cancel(job, event.target); }, "small danger") : null));
  }

  function renderJobs(table, jobs, emptyText) {
    const body = table.tBodies[0];
    if (!jobs.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "empty", text: emptyText })));
      return;
    }
    body.replaceChildren(...jobs.map(jobRow));
  }

  function renderRecovery(actions) {
    const list = $("recovery");
    if (!actions.length) {
      list.replaceChildren(el("li", { class: "empty", text: "Nothing needed fixing." }));
      return;
    }
    list.replaceChildren(...actions.map((a) => el("li", {},
      agoNode(a.at),
      el("strong", { text: a.printer }),
      badge(a.succeeded ? "fixed" : "not fixed"),
      el("span", { class: "text", text: `${a.strategy} for ${a.fault}: ${a.outcome}` }))));
  }

  function renderSecurity(security) {
    const blocked = $("blocked");
    blocked.replaceChildren(...(security.blocked.length
      ? security.blocked.map((b) => el("li", { "data-ip": b.ip },
        el("code", { text: b.ip }),
        el("span", { class: "text", text: `${b.reason}; until ${when(b.until)}` }),
        button("Unblock", (event) => unblock(b.ip, event.target))))
      : [el("li", { class: "empty", text: "None." })]));
    const events = $("security-events");
    events.replaceChildren(...(security.events.length
      ? security.events.map((e) => el("li", {},
        agoNode(e.ts),
        badge(e.event),
        el("code", { text: e.ip }),
        el("span", { class: "text", text: `${e.method} ${e.path}${e.detail ? ` · ${e.detail}` : ""}` })))
      : [el("li", { class: "empty", text: "None." })]));
  }

  // -- actions -------------------------------------------------------------------------------

  function toast(message, kind = "info") {
    const box = $("toast");
    box.textContent = message;
    box.dataset.kind = kind;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  function problemText(data, status) {
    const detail = data && data.detail;
    if (Array.isArray(detail)) return detail.map((d) => d.message || JSON.stringify(d)).join("; ");
    return (typeof detail === "string" && detail) || (data && data.error) || `failed (${status})`;
  }

  async function request(url, options = {}) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    if (response.status === 401) {
      location.reload(); // the session ended: the page is the sign-in page now
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(problemText(data, response.status));
    return data;
  }

  function post(url, body) {
    return request(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
  }

  async function act(control, url, body) {
    if (control) control.disabled = true;
    try {
      const answer = await post(url, body);
      toast(answer.message || "Done.");
      return answer;
    } catch (error) {
      toast(error.message, "error");
      return null;
    } finally {
      if (control) control.disabled = false;
    }
  }

  async function reprint(job, control) {
    if (!confirm(`Print ${job.order || `job ${job.id}`} again?`)) return;
    const answer = await act(control, `/dashboard/api/jobs/${job.id}/reprint`);
    if (answer && dialogJob === job.id) openJob(answer.job.id);
  }

  async function cancel(job, control) {
    if (!confirm(`Cancel ${job.order || `job ${job.id}`}? It will not print.`)) return;
    const answer = await act(control, `/dashboard/api/jobs/${job.id}/cancel`);
    if (answer && dialogJob === job.id) openJob(job.id);
  }

  function unblock(ip, control) {
    if (!confirm(`Let ${ip} connect again?`)) return;
    act(control, "/dashboard/api/security/unblock", { ip });
  }

  async function openJob(id) {
    let job;
    try {
      job = await request(`/dashboard/api/jobs/${id}`);
    } catch (error) {
      toast(error.message, "error");
      return;
    }
    dialogJob = job.id;
    $("job-title").textContent = `${job.order ? `Order ${job.order} · ` : ""}job #${job.id}`;
    $("job-preview").src = `/dashboard/api/jobs/${job.id}/preview.png?at=${job.updated_at}`;
    $("job-facts").replaceChildren(
      ...fact("State", badge(job.state)),
      ...fact("Printer", job.printer + (job.original_printer ? ` (ordered for ${job.original_printer})` : "")),
      ...fact("Ordered", when(job.created_at)),
      ...(job.printed_at ? fact("Finished", when(job.printed_at)) : []),
      ...fact("Copies", String(job.copies)),
      ...fact("Attempts", String(job.attempts)),
      ...(job.reprint_of ? fact("Reprint of", `job #${job.reprint_of}`) : []),
      ...(job.maybe_printed ? fact("Note", "may be on paper already: prints marked REPRINT") : []),
      ...(job.last_error ? fact("Last error", job.last_error) : []));
    $("job-events").replaceChildren(...job.events.map((e) => el("li", {},
      el("time", { text: when(e.at) }), badge(e.to_state), el("span", { class: "text", text: e.detail }))));
    const reprintButton = $("job-reprint");
    reprintButton.hidden = !job.can_reprint;
    reprintButton.onclick = (event) => reprint(job, event.target);
    const cancelButton = $("job-cancel");
    cancelButton.hidden = !job.can_cancel;
    cancelButton.onclick = (event) => cancel(job, event.target);
    const dialog = $("job-dialog");
    if (!dialog.open) dialog.showModal();
  }

  async function search(event) {
    event.preventDefault();
    const q = $("search-q").value.trim();
    const status = $("search-status");
    const table = $("search-results");
    status.textContent = "Searching…";
    try {
      const answer = await request(`/dashboard/api/jobs?q=${encodeURIComponent(q)}`);
      renderJobs(table, answer.jobs, "No order matches.");
      table.hidden = false;
      const count = answer.jobs.length;
      status.textContent = q
        ? `${count || "No"} order${count === 1 ? "" : "s"} matching “${q}”.`
        : `The ${count} newest orders.`;
    } catch (error) {
      status.textContent = error.message;
    }
  }

  // -- live updates ----------------------------------------------------------------------------

  function setConnection(state) {
    const node = $("connection");
    node.dataset.state = state;
    node.dataset.tone = TONES[state];
    node.textContent = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…", lost: "connection lost" }[state];
  }

  function accept(message) {
    offset = Date.now() / 1000 - message.server_time;
    render(message.state);
  }

  function connect() {
    setConnection("connecting");
    source = new EventSource("/dashboard/api/events");
    source.addEventListener("state", (event) => {
      accept(JSON.parse(event.data));
      setConnection("live");
      retryDelay = 2000;
    });
    source.addEventListener("signed-out", () => {
      source.close();
      location.reload();
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) {
        setConnection("reconnecting"); // the browser opens the stream again by itself
        return;
      }
      setConnection("lost");
      recheck();
    });
  }

  // The stream was refused: signed out (reload shows the sign-in page) or a passing problem.
  async function recheck() {
    try {
      accept(await request("/dashboard/api/state"));
    } catch (error) {
      if (error.message === "signed out") return;
    }
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 60000);
  }

  $("search").addEventListener("submit", search);
  $("release-held").addEventListener("click", (event) => act(event.target, "/dashboard/api/queue/release"));
  $("recover-all").addEventListener("click", (event) => act(event.target, "/dashboard/api/recovery/trigger"));
  $("job-dialog").addEventListener("close", () => { dialogJob = null; });
  setInterval(refreshTimes, 5000);
  connect();
})();
