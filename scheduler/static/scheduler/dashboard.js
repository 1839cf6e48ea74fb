/*
 * The live dashboard: draws the task table from the JSON the page was rendered with, then keeps
 * it current from the /ws/tasks/ socket (a snapshot replaces everything, a task frame upserts
 * one task) and reconnects by itself with capped exponential backoff and jitter.
 * The `tasks` map below is the single source of truth; the table is only ever drawn from it.
 */
(() => {
  "use strict";

  const OPEN_STATUSES = new Set(["pending", "running"]);
  const STATUS_LABELS = {
    pending: "Pending",
    running: "Running",
    finished: "Finished",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  const MAX_TASKS = 200; // beyond this, ended tasks are dropped oldest first
  const RETRY_BASE_MS = 500;
  const RETRY_CAP_MS = 30000;
  const PING_EVERY_MS = 25000;
  const PONG_TIMEOUT_MS = 10000; // no frame this long after a ping: the socket is dead
  const SESSION_CHECK_AFTER = 2; // refused handshakes in a row before checking the login

  const root = document.getElementById("dashboard");
  const tbody = document.getElementById("task-rows");
  const countEl = document.getElementById("task-count");
  const connEl = document.getElementById("connection");
  const canCancel = root.dataset.canCancel === "true";
  const columnCount = canCancel ? 8 : 7;
  const baseTitle = document.title;

  const tasks = new Map(); // id -> the task's latest full state
  const rows = new Map(); // id -> {tr, cells, keys}
  const rowErrors = new Map(); // id -> message of a failed cancel
  const cancelling = new Set(); // ids with a cancel request in flight
  let firstDraw = true;

  // --- URLs ------------------------------------------------------------------------------

  /** The task's REST URL, from the route the page was rendered with (so any mount prefix works). */
  function taskUrl(taskId) {
    return root.dataset.taskUrl.replace("__TASK_ID__", encodeURIComponent(taskId));
  }

  function cancelUrl(task) {
    return `${taskUrl(task.task_id)}/cancel`;
  }

  /**
   * Where result image `index` of `task` is shown from: the site's same-origin image route,
   * which fetches it from ComfyOne with the server's key (the key never reaches the browser).
   * This is the only place that builds an image URL.
   */
  function thumbnailUrl(task, index) {
    return `${taskUrl(task.task_id)}/images/${index}`;
  }

  function websocketUrl() {
    const configured = root.dataset.websocketUrl;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    if (!configured) return `${scheme}//${location.host}/ws/tasks/`;
    if (configured.startsWith("/")) return `${scheme}//${location.host}${configured}`;
    return configured;
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  // --- formatting ------------------------------------------------------------------------

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

  function timestamp(iso) {
    const value = Date.parse(iso || "");
    return Number.isNaN(value) ? 0 : value;
  }

  function formatCreated(iso) {
    const date = new Date(timestamp(iso));
    const today = new Date().toDateString() === date.toDateString();
    return (today ? timeFormat : dateTimeFormat).format(date);
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    const minutes = Math.floor(ms / 60000);
    return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  function shortId(id) {
    return id.length > 12 ? `${id.slice(0, 8)}…` : id;
  }

  /** The first text input (usually the prompt), so people recognise their task. */
  function inputSummary(task) {
    for (const item of task.inputs || []) {
      for (const value of Object.values((item && item.params) || {})) {
        if (typeof value === "string" && value.trim()) {
          const text = value.trim();
          return text.length > 48 ? `“${text.slice(0, 47)}…”` : `“${text}”`;
        }
      }
    }
    return "";
  }

  function clampPercent(value) {
    const n = Number(value);
    return Number.isFinite(n) ? Math.max(0, Math.min(100, Math.round(n))) : 0;
  }

  /** A tiny element builder: el("span", {class: "x"}, "text", child). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // --- state -----------------------------------------------------------------------------

  function sortedTasks() {
    return [...tasks.values()].sort(
      (a, b) => timestamp(b.created) - timestamp(a.created) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
    );
  }

  /** Keeps the map bounded: open tasks always stay, the oldest ended ones go first. */
  function trim() {
    if (tasks.size <= MAX_TASKS) return;
    const ended = sortedTasks().filter((t) => !OPEN_STATUSES.has(t.status));
    for (const task of ended.slice(Math.max(0, ended.length - (tasks.size - MAX_TASKS)))) {
      tasks.delete(task.id);
    }
  }

  function replaceAll(list) {
    tasks.clear();
    for (const task of list || []) tasks.set(task.id, task);
    for (const id of [...rowErrors.keys()]) if (!tasks.has(id)) rowErrors.delete(id);
    draw();
  }

  function upsert(task) {
    if (!task || !task.id) return;
    const known = tasks.get(task.id);
    // Every frame is a full state: an older one (say a cancel reply overtaken by a socket
    // frame) must not win over a newer one.
    if (known && timestamp(task.updated) < timestamp(known.updated)) return;
    tasks.set(task.id, task);
    if (!OPEN_STATUSES.has(task.status)) cancelling.delete(task.id);
    trim();
    draw(known ? null : task.id);
  }

  // --- drawing ---------------------------------------------------------------------------

  function statusCell(task) {
    const status = task.status;
    return [
      el("span", { class: `badge badge--${status}`, "data-status": status }, STATUS_LABELS[status] || status),
      status === "pending" && Number.isInteger(task.queue_position) ? queueLabel(task.queue_position) : null,
    ];
  }

  /** ComfyOne counts the queue from 0 (next to run). */
  function queueLabel(position) {
    const text = position === 0 ? "Next in queue" : `${position} ahead in queue`;
    return el("span", { class: "queue", title: `Queue position ${position} (0 is next)` }, text);
  }

  function progressCell(task) {
    const percent = clampPercent(task.progress);
    const fill = el("span", { class: "progress__fill" });
    fill.style.width = `${percent}%`; // through the CSSOM, which a strict CSP still allows
    const bar = el(
      "span",
      {
        class: `progress progress--${task.status}`,
        role: "progressbar",
        "aria-valuemin": 0,
        "aria-valuemax": 100,
        "aria-valuenow": percent,
        "aria-label": `Progress of task ${task.task_id}`,
      },
      fill,
    );
    return [el("span", { class: "progress-line" }, bar, el("span", { class: "progress__pct" }, `${percent}%`))];
  }

  /** Progress changes often: move the existing bar (so its width animates) instead of redrawing. */
  function updateProgress(cell, task) {
    const bar = cell.querySelector("[role=progressbar]");
    if (!bar) return false;
    const percent = clampPercent(task.progress);
    bar.className = `progress progress--${task.status}`;
    bar.setAttribute("aria-valuenow", String(percent));
    bar.firstChild.style.width = `${percent}%`;
    cell.querySelector(".progress__pct").textContent = `${percent}%`;
    return true;
  }

  function thumbnail(task, index) {
    const img = el("img", {
      src: thumbnailUrl(task, index),
      alt: `Result ${index + 1} of task ${task.task_id}`,
      loading: "lazy",
      decoding: "async",
      width: 56,
      height: 56,
    });
    const link = el("a", { class: "thumb", href: thumbnailUrl(task, index), target: "_blank", rel: "noopener" }, img);
    // Until the image route answers, show a neat placeholder instead of a broken-image icon.
    img.addEventListener("error", () => link.classList.add("thumb--missing"), { once: true });
    return link;
  }

  function resultCell(task) {
    if (task.status === "finished") {
      const images = task.images || [];
      if (!images.length) return [el("span", { class: "muted" }, "No images")];
      return [el("span", { class: "thumbs" }, ...images.map((_, i) => thumbnail(task, i)))];
    }
    if (task.status === "failed") {
      return [
        el(
          "span",
          { class: "error" },
          task.error_node ? el("span", { class: "error__node" }, `Node ${task.error_node}`) : null,
          el("span", { class: "error__message" }, task.error_message || "Failed without a message"),
        ),
      ];
    }
    if (task.status === "cancelled") return [el("span", { class: "muted" }, "Cancelled")];
    return [el("span", { class: "muted" }, "—")];
  }

  function actionCell(task) {
    const parts = [];
    if (OPEN_STATUSES.has(task.status)) {
      const busy = cancelling.has(task.id);
      parts.push(
        el(
          "button",
          {
            type: "button",
            class: "button button--danger",
            disabled: busy,
            "aria-label": `Cancel task ${task.task_id}`,
            onclick: () => cancelTask(task.id),
          },
          busy ? "Cancelling…" : "Cancel",
        ),
      );
    }
    if (rowErrors.has(task.id)) {
      parts.push(el("span", { class: "row-error", role: "alert" }, rowErrors.get(task.id)));
    }
    return parts;
  }

  // Each cell: a key of what it shows, and how to draw it. A cell is redrawn only when its key
  // changes, so focus, hover and loaded thumbnails survive the frequent progress frames.
  const CELLS = [
    {
      key: (t) => `${t.task_id}|${t.app_id}|${t.workflow_id}`,
      draw: (t) => [
        el("code", { class: "task-id", title: t.task_id }, shortId(t.task_id)),
        el("span", { class: "sub" }, `${t.app_id} · ${t.workflow_id}`),
        inputSummary(t) ? el("span", { class: "sub sub--input", title: JSON.stringify(t.inputs) }, inputSummary(t)) : null,
      ],
    },
    { key: (t) => `${t.status}|${t.queue_position}`, draw: statusCell },
    { key: () => "bar", draw: progressCell, update: updateProgress },
    {
      key: (t) => t.backend_host || "",
      draw: (t) => [t.backend_host ? el("code", { class: "host", title: t.backend_host }, t.backend_host) : el("span", { class: "muted" }, "—")],
    },
    {
      key: (t) => t.created,
      draw: (t) => [el("time", { datetime: t.created, title: fullFormat.format(new Date(timestamp(t.created))) }, formatCreated(t.created))],
    },
    { key: (t) => String(t.cost_time), draw: (t) => [formatDuration(t.cost_time)], className: "num" },
    { key: (t) => `${t.status}|${(t.images || []).length}|${t.error_node}|${t.error_message}`, draw: resultCell },
  ];
  if (canCancel) {
    CELLS.push({
      key: (t) => `${OPEN_STATUSES.has(t.status)}|${cancelling.has(t.id)}|${rowErrors.get(t.id) || ""}`,
      draw: actionCell,
      className: "actions",
    });
  }

  function makeRow(task) {
    const cells = CELLS.map((spec) => el("td", { class: spec.className }));
    const tr = el("tr", { "data-task-id": task.task_id, "data-id": task.id }, ...cells);
    return { tr, cells, keys: CELLS.map(() => null) };
  }

  function updateRow(row, task) {
    row.tr.dataset.status = task.status;
    CELLS.forEach((spec, i) => {
      const key = spec.key(task);
      const cell = row.cells[i];
      if (row.keys[i] === key) {
        if (spec.update) spec.update(cell, task);
        return;
      }
      row.keys[i] = key;
      cell.replaceChildren(...spec.draw(task).filter((part) => part !== null && part !== undefined));
    });
  }

  function draw(newId) {
    const ordered = sortedTasks();
    for (const [id, row] of rows) {
      if (!tasks.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    const placeholder = tbody.querySelector(".empty-row");
    if (placeholder) placeholder.remove();
    ordered.forEach((task, index) => {
      let row = rows.get(task.id);
      if (!row) {
        row = makeRow(task);
        rows.set(task.id, row);
        if (!firstDraw && task.id === newId) row.tr.classList.add("row--new");
      }
      updateRow(row, task);
      // Move a row only when it is out of place: moving a node would blur a focused button.
      if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] || null);
    });
    if (!ordered.length) {
      tbody.append(
        el("tr", { class: "empty-row" }, el("td", { colspan: columnCount }, "No tasks yet. Submitted tasks appear here as they run.")),
      );
    }
    const open = ordered.filter((t) => OPEN_STATUSES.has(t.status)).length;
    countEl.textContent = `${ordered.length} shown · ${open} open`;
    document.title = open ? `(${open}) ${baseTitle}` : baseTitle;
    firstDraw = false;
  }

  // --- cancel ----------------------------------------------------------------------------

  async function cancelTask(id) {
    const task = tasks.get(id);
    if (!task || cancelling.has(id)) return;
    cancelling.add(id);
    rowErrors.delete(id);
    draw();
    let message = null;
    try {
      const response = await fetch(cancelUrl(task), {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      });
      const body = await response.json().catch(() => null);
      if (response.ok && body && body.id) {
        cancelling.delete(id);
        upsert(body);
        return;
      }
      const detail = body && body.detail ? body.detail : response.statusText;
      message = `Could not cancel: ${detail || `HTTP ${response.status}`}`;
    } catch (err) {
      message = "Could not cancel: the server did not answer.";
    }
    cancelling.delete(id);
    rowErrors.set(id, message);
    draw();
  }

  // --- the socket ------------------------------------------------------------------------

  let socket = null;
  let attempt = 0; // failed connections since the last good snapshot
  let retryTimer = null;
  let retryAt = 0;
  let countdownTimer = null;
  let pingTimer = null;
  let pongTimer = null;

  function setConnection(state, detail) {
    const label = connEl.querySelector(".conn__label");
    const countdown = connEl.querySelector(".conn__countdown");
    clearInterval(countdownTimer);
    countdownTimer = null;
    countdown.textContent = "";
    if (connEl.dataset.state !== state) {
      // The label is announced (role=status), so it changes only with the state; the
      // countdown beside it is for the eyes only.
      connEl.dataset.state = state;
      if (state === "live") label.textContent = "Live";
      else if (state === "connecting") label.textContent = "Connecting…";
      else if (state === "reconnecting") label.textContent = "Reconnecting";
      else if (state === "signed-out") {
        label.replaceChildren("Signed out · ", el("a", { href: location.href }, "sign in again"));
      }
    }
    if (state === "reconnecting" && detail === "waiting") {
      const tick = () => {
        const seconds = Math.ceil((retryAt - Date.now()) / 1000);
        countdown.textContent = seconds > 0 ? `in ${seconds} s` : "";
      };
      tick();
      countdownTimer = setInterval(tick, 1000);
    }
  }

  function retryDelay() {
    // Capped exponential backoff with "equal jitter": half the step fixed, half random, so
    // a server restart is not met by every open dashboard at the same instant.
    const step = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(attempt, 16));
    return step / 2 + Math.random() * (step / 2);
  }

  function scheduleReconnect(neverOpened) {
    attempt += 1;
    const delay = retryDelay();
    retryAt = Date.now() + delay;
    setConnection("reconnecting", "waiting");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
    if (neverOpened && attempt >= SESSION_CHECK_AFTER) checkSession();
  }

  /** A refused handshake may mean the session ended: if the page now redirects, stop retrying. */
  async function checkSession() {
    try {
      const response = await fetch(location.href, { redirect: "manual", credentials: "same-origin", cache: "no-store" });
      if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
        clearTimeout(retryTimer);
        retryTimer = null;
        setConnection("signed-out");
      }
    } catch (err) {
      // The server is down too; keep retrying.
    }
  }

  function stopHeartbeat() {
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    pingTimer = pongTimer = null;
  }

  function startHeartbeat(ws) {
    stopHeartbeat();
    pingTimer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ type: "ping" }));
      clearTimeout(pongTimer);
      pongTimer = setTimeout(() => abandon(ws), PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  /** Gives up on a socket that stopped answering without waiting for its close handshake. */
  function abandon(ws) {
    if (ws !== socket) return;
    socket = null;
    stopHeartbeat();
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch (err) {
      // Already closing.
    }
    scheduleReconnect(false);
  }

  function onMessage(raw) {
    clearTimeout(pongTimer); // any frame proves the socket is alive
    let message;
    try {
      message = JSON.parse(raw);
    } catch (err) {
      return;
    }
    if (message.type === "snapshot") {
      attempt = 0;
      replaceAll(message.tasks);
      setConnection("live");
    } else if (message.type === "task") {
      upsert(message.task);
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (socket) return;
    setConnection(attempt === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new WebSocket(websocketUrl());
    } catch (err) {
      scheduleReconnect(true);
      return;
    }
    let opened = false;
    socket = ws;
    window.__dashboardSocket = ws; // for tests and debugging: close() it to exercise reconnects
    ws.onopen = () => {
      opened = true;
      startHeartbeat(ws);
    };
    ws.onmessage = (event) => {
      if (ws === socket) onMessage(event.data);
    };
    ws.onclose = () => {
      if (ws !== socket) return;
      socket = null;
      stopHeartbeat();
      scheduleReconnect(!opened);
    };
  }

  function reconnectNow() {
    // Back online or back in view: do not sit out the rest of a long backoff.
    if (!socket && retryTimer !== null) connect();
  }

  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reconnectNow();
  });

  window.__dashboard = { tasks, connect, thumbnailUrl, get socket() { return socket; } };

  const initial = document.getElementById("dashboard-tasks");
  replaceAll(initial ? JSON.parse(initial.textContent) : []);
  connect();
})();
