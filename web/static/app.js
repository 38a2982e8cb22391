// mimids dashboard: follows the live stream (server-sent events) and draws the
// overview's charts as SVG. Written for this repository; no dependencies.
"use strict";
(function () {
  if (!document.body.dataset.live) return;
  const keep = 600; // ten minutes, one point a second
  let points = [];
  const ids = Array.from(document.querySelectorAll("[data-client-id]")).map((e) => e.dataset.clientId);
  const url = "/dashboard/events" + (ids.length ? "?clients=" + ids.join(",") : "");
  const es = new EventSource(url);
  const fmt = (k, v) => (k === "messages" || k === "deliveries" ? v.toFixed(1) : String(v));
  const svgNS = "http://www.w3.org/2000/svg";

  function draw() {
    document.querySelectorAll("svg[data-chart]").forEach((svg) => {
      const key = svg.dataset.chart;
      const vals = points.map((p) => p[key] || 0);
      const top = Math.max(1, ...vals);
      const n = vals.length;
      const pts = vals.map((v, i) => ((i + keep - n) * 600 / (keep - 1)).toFixed(1) + "," + (115 - v / top * 105).toFixed(1)).join(" ");
      let line = svg.querySelector("polyline");
      let label = svg.querySelector("text");
      if (!line) {
        line = document.createElementNS(svgNS, "polyline");
        label = document.createElementNS(svgNS, "text");
        label.setAttribute("x", "4");
        label.setAttribute("y", "24");
        const base = document.createElementNS(svgNS, "line");
        base.setAttribute("x1", "0");
        base.setAttribute("x2", "600");
        base.setAttribute("y1", "115");
        base.setAttribute("y2", "115");
        const ago = document.createElementNS(svgNS, "text");
        ago.setAttribute("x", "4");
        ago.setAttribute("y", "108");
        ago.textContent = "10 min ago";
        const now = document.createElementNS(svgNS, "text");
        now.setAttribute("x", "596");
        now.setAttribute("y", "108");
        now.setAttribute("text-anchor", "end");
        now.textContent = "now";
        svg.append(base, ago, now, line, label);
      }
      line.setAttribute("points", pts);
      label.textContent = "max " + fmt(key, top);
      const last = n ? fmt(key, vals[n - 1]) : "no data";
      svg.setAttribute("aria-description", "latest " + last + ", highest " + fmt(key, top) + " over the last " + Math.round(n / 60) + " minutes");
    });
  }

  function show(p) {
    document.querySelectorAll("[data-metric]").forEach((e) => {
      const k = e.dataset.metric;
      if (k in p) e.textContent = fmt(k, p[k]);
    });
    const tb = document.querySelector("#errors tbody");
    if (tb && p.errors) {
      const rows = Object.keys(p.errors).sort().map((k) => {
        const tr = document.createElement("tr");
        const a = document.createElement("td");
        const b = document.createElement("td");
        a.textContent = k;
        b.textContent = String(p.errors[k]);
        tr.append(a, b);
        return tr;
      });
      if (rows.length) tb.replaceChildren(...rows);
    }
  }

  es.addEventListener("history", (ev) => {
    points = JSON.parse(ev.data) || [];
    if (points.length) show(points[points.length - 1]);
    draw();
  });
  es.addEventListener("point", (ev) => {
    const p = JSON.parse(ev.data);
    points.push(p);
    if (points.length > keep) points.splice(0, points.length - keep);
    show(p);
    draw();
  });
  es.addEventListener("clients", (ev) => {
    const m = JSON.parse(ev.data);
    for (const id in m) {
      const s = document.querySelector('[data-sockets-for="' + id + '"]');
      const seen = document.querySelector('[data-seen-for="' + id + '"]');
      if (s) s.textContent = String(m[id].sockets);
      if (seen) seen.textContent = m[id].last_seen;
    }
  });
  function off(msg) {
    es.close();
    const h = document.querySelector("main h1");
    if (h && !document.querySelector(".live-off")) {
      const p = document.createElement("p");
      p.className = "live-off";
      p.setAttribute("role", "status");
      p.textContent = msg;
      h.after(p);
    }
  }
  es.addEventListener("ended", () => off("Your session ended: log in again for live numbers."));
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) off("Live updates stopped: reload the page."); };
})();
