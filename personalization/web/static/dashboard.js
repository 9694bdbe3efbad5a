// cardline dashboard: fills the line and batch pages from the server's live stream
// (server-sent events), and sends run controls and alarm clearances without reloading.
// Every value goes in as text (never as HTML); charts are Chart.js's.
"use strict";

(function () {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const words = page.words;
  const w = (key) => (key in words ? words[key] : key);
  const charts = {};

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function row(label, value, id) {
    return el("tr", id ? { id: id } : {}, el("th", { text: label }), el("td", { text: value }));
  }

  function fillTable(id, rows) {
    const body = document.querySelector("#" + id + " tbody");
    if (body) body.replaceChildren(...rows);
  }

  function printerCells(status) {
    if (!status || Object.keys(status).length === 0) return el("span", { text: "—" });
    const box = el("dl", { class: "printer" });
    const add = (key, value, bad) => {
      box.append(el("dt", { text: w(key) }), el("dd", { class: bad ? "bad" : "", text: value }));
    };
    add("printer", w(status.ready ? "ready" : "not_ready"), !status.ready);
    add("ribbon", status.ribbon_remaining + " / " + status.ribbon_capacity,
        status.ribbon_remaining === 0);
    add("feeder", w("feeder." + status.feeder), status.feeder === "empty");
    add("hopper", w(status.reject_box_full ? "hopper.full" : "hopper.ok"), status.reject_box_full);
    add("cover", w(status.cover_open ? "cover.open" : "cover.closed"), status.cover_open);
    return box;
  }

  function renderStations(line, batch, progress) {
    const box = document.getElementById("stations");
    if (!box || !line) return;
    const use = {};
    for (const u of (progress && progress.utilisation) || []) use[u.station] = u.utilisation;
    const cards = line.stations.map((s) => {
      const alarm = s.alarm
        ? el("div", { class: "alarm", id: "alarm-" + s.station, role: "alert" },
            el("b", { text: w("alarm") + ": " }), s.alarm,
            page.may_clear
              ? el("button", { type: "button", class: "clear", id: "clear-" + s.station,
                               "data-url": "/batches/" + encodeURIComponent(batch) + "/alarms/" +
                                 encodeURIComponent(s.station) + "/clear", text: w("alarm.clear") })
              : null)
        : null;
      return el("article", { class: "station state-" + s.state, id: "station-" + s.station },
        el("h2", {}, s.station, " ", el("span", { class: "badge", id: "state-" + s.station,
                                                     text: w("state." + s.state) })),
        alarm,
        el("table", {}, el("tbody", {},
          row(w("card_in_hand"), s.card === null ? "—" : "#" + s.card, "card-" + s.station),
          row(w("application"), s.application || "—"),
          row(w("handed_out"), s.handed_out, "handed-" + s.station),
          row(w("rejected"), s.rejected),
          row(w("utilisation"), s.station in use ? pct(use[s.station]) : "—",
              "use-" + s.station),
          row(w("encoder"), s.encoder || "—"))),
        printerCells(s.printer));
    });
    box.replaceChildren(...cards);
  }

  function pct(value) { return (100 * value).toFixed(1) + " %"; }

  function when(iso) {
    if (!iso) return w("eta.none");
    return new Date(iso).toLocaleString(page.lang === "vi" ? "vi-VN" : "en-GB");
  }

  function renderStrip(progress) {
    const strip = document.getElementById("progress-strip");
    if (!strip || !progress) return;
    const apps = progress.applications;
    strip.replaceChildren(
      el("span", { id: "strip-progress", text: w("progress") + ": " + apps.done + " / " +
                   apps.total + " (" + pct(progress.progress) + ")" }),
      el("span", { text: w("eta") + ": " + when(progress.eta) }),
      el("span", { text: progress.cards_per_hour + " " + w("cards_per_hour") }));
  }

  function chart(id, type, options) {
    if (charts[id] || typeof Chart === "undefined") return charts[id];
    const canvas = document.getElementById(id);
    if (!canvas) return null;
    charts[id] = new Chart(canvas, {
      type: type,
      data: { labels: [], datasets: [{ label: "", data: [] }] },
      options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
                               plugins: { legend: { display: false } } }, options || {}),
    });
    return charts[id];
  }

  function setChart(id, type, labels, values, options) {
    const c = chart(id, type, options);
    if (!c) return;
    c.data.labels = labels;
    c.data.datasets[0].data = values;
    c.update();
  }

  function renderBatch(progress) {
    if (!progress) return;
    const apps = progress.applications;
    document.getElementById("batch-state").textContent = w("batch.state." + progress.state);
    document.getElementById("progress-fill").style.width = (100 * progress.progress) + "%";
    document.getElementById("progress-text").textContent =
      apps.done + " / " + apps.total + " (" + pct(progress.progress) + ")";
    document.getElementById("eta").textContent = when(progress.eta);
    document.getElementById("rate").textContent =
      progress.cards_per_hour + " " + w("cards_per_hour");
    fillTable("applications", [
      row(w("apps.total"), apps.total), row(w("apps.handed_out"), apps.handed_out, "apps-handed"),
      row(w("apps.failed"), apps.failed), row(w("apps.pending"), apps.pending),
      row(w("apps.active"), apps.active), row(w("apps.quarantined"), progress.quarantined)]);
    const stock = progress.stock;
    fillTable("stock", [
      row(w("stock.fed"), stock.fed), row(w("stock.handed_out"), stock.handed_out),
      row(w("stock.rejected"), stock.rejected), row(w("stock.in_machine"), stock.in_machine),
      row(w("stock.printer_fed"), stock.printer_fed),
      row(w("stock.reconciled"), w(stock.reconciled ? "stock.reconciled" : "stock.not_reconciled"),
          "stock-reconciled")]);
    const points = progress.timeline || [];
    setChart("throughput-chart", "line", points.map((p) => p[0] + " s"), points.map((p) => p[1]),
             { elements: { point: { radius: 0 } } });
    const reasons = Object.entries(progress.reject_reasons || {});
    document.getElementById("reasons-none").hidden = reasons.length > 0;
    document.getElementById("reasons-chart").parentElement.hidden = reasons.length === 0;
    setChart("reasons-chart", "bar", reasons.map((r) => r[0]), reasons.map((r) => r[1]),
             { indexAxis: "y" });
    const use = progress.utilisation || [];
    setChart("utilisation-chart", "bar", use.map((u) => u.station),
             use.map((u) => Math.round(u.utilisation * 100)),
             { scales: { y: { min: 0, max: 100 } } });
    fillTable("lines", (progress.lines || []).map((l) => el("tr", {},
      el("td", { text: l.line }), el("td", { text: w(l.alive ? "alive" : "dead") }),
      el("td", { text: l.heartbeat_age_s.toFixed(1) + " " + w("seconds") }),
      el("td", { text: l.claimed }), el("td", { text: l.in_doubt }))));
  }

  function render(snap) {
    if (!snap || snap.error) return;
    if (page.view === "line") {
      renderStrip(snap.progress);
      renderStations(snap.line, snap.batch, snap.progress);
    } else if (page.view === "batch") {
      renderBatch(snap.progress);
    }
    document.body.dataset.updated = String(Date.now());
  }

  async function post(url, message) {
    const answer = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": page.csrf, Accept: "application/json" },
    });
    let text = "";
    try { text = (await answer.json()).message; } catch (e) { text = answer.statusText; }
    if (message) {
      message.textContent = text;
      message.className = answer.ok ? "ok" : "error";
    }
    return answer.ok;
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.classList.contains("act")) return;
    event.preventDefault();
    post(form.action, document.getElementById("control-message"));
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.clear");
    if (!button) return;
    button.disabled = true;
    post(button.dataset.url, null);
  });

  function connect() {
    if (!page.batch || typeof EventSource === "undefined") return;
    const conn = document.getElementById("conn");
    const source = new EventSource("/api/stream?batch=" + encodeURIComponent(page.batch) +
                                   "&lang=" + page.lang);
    source.onmessage = (event) => {
      if (conn) { conn.textContent = w("live"); conn.className = "conn"; }
      render(JSON.parse(event.data));
    };
    source.addEventListener("ended", () => { source.close(); window.location.assign("/login"); });
    source.onerror = () => { if (conn) { conn.textContent = w("offline"); conn.className = "conn off"; } };
  }

  render(page.snap);
  connect();
})();
