// Encore's web app: the player, the charts dashboard and the operations view, over the API at /v1 on the same
// origin. No framework and no library: the page talks to /v1 with fetch and draws its line charts as SVG. The API key
// never appears here: in AWS, CloudFront adds it to the requests it forwards to API Gateway; on the twin, the
// site server does (docs/webapp.md).
"use strict";

const QUALIFYING_MS = 30000; // a stop after this long is a "listen", before it a "skip" (the API's rule)
const TICK_MS = 200;

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
};

async function api(path, options = {}) {
  const response = await fetch(`/v1${path}`, {
    ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const reason = (body && (body.reason || body.message)) || response.statusText;
    throw new Error(`${response.status}: ${reason}`);
  }
  return { status: response.status, body };
}

// --- views -----------------------------------------------------------------------------------------------------

const VIEWS = ["player", "charts", "operations"];

function show() {
  const view = VIEWS.find((name) => location.hash === `#${name}`) || "player";
  for (const name of VIEWS) {
    $(name).hidden = name !== view;
    if (name === view) $(`nav-${name}`).setAttribute("aria-current", "page");
    else $(`nav-${name}`).removeAttribute("aria-current");
  }
  if (view === "charts" && !charts.loaded) loadCharts();
  if (view === "operations" && !ops.loaded) loadOperations();
}

// A line chart: one polyline per series over the same x labels, a legend line each, and the values in its label
// for screen readers.
function lineChart(labels, series, unit) {
  const width = 420, height = 180, pad = 30;
  const values = series.flatMap((s) => s.values).filter((v) => v !== null);
  const most = Math.max(...values, 0) || 1;
  const x = (i) => pad + (labels.length > 1 ? (i * (width - 2 * pad)) / (labels.length - 1) : (width - 2 * pad) / 2);
  const y = (v) => height - pad - (v * (height - 2 * pad)) / most;
  const colours = ["#0b4f9c", "#a3360b", "#2e6b1f", "#6a1b9a", "#8a6d00", "#00695c", "#b71c50", "#37474f", "#4e342e", "#1a237e"];
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20 * series.length}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", series.map((s) => `${s.label}: ${s.values.join(", ")} ${unit}`).join("; "));
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  add("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#444" });
  add("text", { x: 2, y: pad, fill: "#111" }, Number.isInteger(most) ? String(most) : most.toFixed(3));
  labels.forEach((label, i) => add("text", { x: x(i) - 14, y: height - pad + 14, fill: "#111" }, label));
  series.forEach((s, k) => {
    const colour = colours[k % colours.length];
    const points = s.values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    add("polyline", { points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 2 });
    for (const point of points) {
      const [cx, cy] = point.split(",");
      add("circle", { cx, cy, r: 3, fill: colour });
    }
    const last = s.values.at(-1);
    const shown = last === null ? "none" : Number.isInteger(last) ? String(last) : last.toFixed(4);
    add("text", { x: pad, y: height + 14 + 20 * k, fill: colour }, `${s.label} (${shown} ${unit})`);
  });
  return svg;
}

// --- player ----------------------------------------------------------------------------------------------------

const player = {
  listener: null,
  region: "US",
  session: crypto.randomUUID(),
  playing: null, // {item, recommendationId, context, durationMs, playedMs, timer}
  sent: 0,
};

function why(item) {
  const parts = [item.source];
  if (item.cf !== null && item.cf !== undefined) parts.push(`cf ${item.cf.toFixed(2)}`);
  if (item.content !== null && item.content !== undefined) parts.push(`content ${item.content.toFixed(2)}`);
  return parts.join(", ");
}

function cover(trackId) {
  // A track without artwork gets a colour of its own (from its id), so that lists stay easy to scan.
  let hash = 0;
  for (const ch of trackId) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const span = el("span", { class: "cover", "aria-hidden": "true" });
  span.style.background = `hsl(${hash % 360} 45% 40%)`; // through CSSOM: the policy allows no inline style
  return span;
}

function renderTracks(list, answer, context) {
  list.replaceChildren();
  if (answer.fallback) {
    const reason = (answer.fallback_reason || "").replaceAll("_", " ");
    list.append(el("li", { class: "fallback" }, `Trending instead of personal picks (${reason}).`));
  }
  for (const item of answer.items) {
    const title = item.name || item.track_id;
    const artist = item.artist_name || "unknown artist";
    const image = item.image_url ? el("img", { src: item.image_url, alt: "", width: "24", height: "24" }) : cover(item.track_id);
    list.append(
      el(
        "li",
        { "data-track": item.track_id },
        image,
        ` ${title} — ${artist} `,
        el("span", { class: "why" }, `(${why(item)})`),
        el("button", { type: "button", "aria-label": `Play ${title}`, onclick: () => play(item, answer.recommendation_id, context) }, "Play"),
        el("button", { type: "button", "aria-label": `Tracks similar to ${title}`, onclick: () => loadSimilar(item) }, "Similar"),
      ),
    );
  }
}

function status(text) {
  $("player-status").textContent = text;
}

async function openHome(event) {
  if (event) event.preventDefault();
  player.listener = $("listener").value.trim();
  player.region = $("region").value.trim().toUpperCase();
  status(`Loading ${player.listener}'s home page…`);
  try {
    const { body } = await api(`/users/${encodeURIComponent(player.listener)}/recommendations?limit=10`);
    renderTracks($("home"), body, "home");
    status(`Home page of ${player.listener} from model ${body.model_version || "none"}.`);
  } catch (error) {
    status(`Could not load the home page: ${error.message}`);
  }
}

function newListener() {
  $("listener").value = `web-${crypto.randomUUID().slice(0, 8)}`;
  openHome();
}

async function play(item, recommendationId, context) {
  if (player.playing) await stop("skip");
  let durationMs = 180000;
  try {
    durationMs = (await api(`/tracks/${encodeURIComponent(item.track_id)}`)).body.duration_ms;
  } catch (error) {
    status(`No metadata for ${item.track_id} (${error.message}); playing it as 3 minutes.`);
  }
  const playing = { item, recommendationId, context, durationMs, playedMs: 0 };
  playing.timer = setInterval(() => {
    playing.playedMs = Math.min(durationMs, playing.playedMs + TICK_MS * Number($("speed").value));
    $("progress").value = playing.playedMs / durationMs;
    if (playing.playedMs >= durationMs) stop("complete");
  }, TICK_MS);
  player.playing = playing;
  $("now-track").textContent = `${item.name || item.track_id} — ${item.artist_name || "unknown artist"}`;
  $("progress").value = 0;
  $("skip").disabled = $("complete").disabled = false;
  loadSimilar(item);
}

async function stop(how) {
  const playing = player.playing;
  if (!playing) return;
  clearInterval(playing.timer);
  player.playing = null;
  $("skip").disabled = $("complete").disabled = true;
  const played = how === "complete" ? playing.durationMs : playing.playedMs;
  const action = how === "complete" ? "complete" : played > QUALIFYING_MS ? "listen" : "skip";
  if (how === "complete") $("progress").value = 1;
  await send(playing, action, played);
  await loadQueue(playing.item);
}

async function send(playing, action, playedMs) {
  const event = {
    event_id: crypto.randomUUID(),
    user_id: player.listener,
    track_id: playing.item.track_id,
    action,
    timestamp: Date.now(),
    played_ms: Math.round(playedMs),
    track_duration_ms: playing.durationMs,
    session_id: player.session,
    region: player.region,
    context: playing.context,
    recommendation_id: playing.recommendationId,
  };
  let line;
  try {
    const { status: code, body } = await api("/events", { method: "POST", body: JSON.stringify({ events: [event] }) });
    player.sent += 1;
    line = `${action} ${event.track_id} (${playing.context}) → ${code}, accepted ${body.accepted}`;
  } catch (error) {
    line = `${action} ${event.track_id} → not sent: ${error.message}`;
  }
  $("events").append(el("li", {}, line));
}

async function loadQueue(item) {
  try {
    const path = `/users/${encodeURIComponent(player.listener)}/next?track_id=${encodeURIComponent(item.track_id)}&limit=5`;
    renderTracks($("queue"), (await api(path)).body, "next");
  } catch (error) {
    status(`Could not load the next songs: ${error.message}`);
  }
}

async function loadSimilar(item) {
  $("similar-of").textContent = item.name || item.track_id;
  try {
    renderTracks($("similar"), (await api(`/tracks/${encodeURIComponent(item.track_id)}/similar?limit=5`)).body, "similar");
  } catch (error) {
    status(`Could not load similar tracks: ${error.message}`);
  }
}

// --- charts ----------------------------------------------------------------------------------------------------

const charts = { loaded: false, timer: null };
const REFRESH_MS = 60000; // the charts job lands every 15 minutes; a minute's lag is enough

function chartStatus(text) {
  $("chart-status").textContent = text;
}

function periodStart(window, at) {
  const t = new Date(at);
  if (window === "day") t.setUTCHours(0, 0, 0, 0);
  else t.setUTCMinutes(0, 0, 0);
  return t;
}

async function loadCharts(event) {
  if (event) event.preventDefault();
  charts.loaded = true;
  const region = $("chart-region").value.trim().toUpperCase();
  const window = $("chart-window").value;
  const at = $("chart-at").value ? `${$("chart-at").value}:00Z` : null;
  const query = `window=${window}&limit=10${at ? `&at=${encodeURIComponent(at)}` : ""}`;
  try {
    const { body } = await api(`/charts/${encodeURIComponent(region)}?${query}`);
    $("chart-period").textContent = body.period ? `of ${body.period} (${body.window}, ${body.region})` : "";
    const rows = body.items.map((item) => {
      const pick = el("input", { type: "checkbox", "aria-label": `Plot ${item.name || item.track_id}` });
      pick.checked = item.rank <= 3; // the top 3 to begin with
      pick.addEventListener("change", plotSelected);
      return el("tr", { "data-track": item.track_id }, el("td", {}, pick), el("td", {}, String(item.rank)),
        el("td", {}, item.name || item.track_id), el("td", {}, item.artist_name || ""), el("td", {}, String(item.plays)));
    });
    charts.items = body.items;
    $("top").tBodies[0].replaceChildren(...rows);
    chartStatus(body.items.length ? `Updated ${new Date().toISOString().slice(11, 19)} UTC.` : "No chart for this period yet.");
    charts.series = null; // a chart without a period has no history to plot
    if (body.period) await fetchSeries(region, window, body.period);
    if (charts.series) plotSelected();
    else $("series").replaceChildren();
    const where = region === "GLOBAL" ? "" : `region=${encodeURIComponent(region)}&`;
    renderTracks($("trending"), trendingAnswer((await api(`/trending?${where}limit=10`)).body), "chart");
  } catch (error) {
    chartStatus(`Could not load the chart: ${error.message}`);
  }
  clearTimeout(charts.timer);
  charts.timer = setTimeout(loadCharts, REFRESH_MS);
}

function trendingAnswer(chart) {
  return { fallback: false, items: chart.items.map((i) => ({ ...i, source: `${i.plays} plays in 7 days`, cf: null, content: null })) };
}

async function fetchSeries(region, window, period) {
  // The last six periods' charts (deep enough to find a track outside the top 10), for the tracks picked.
  const step = window === "day" ? 86400000 : 3600000;
  const end = periodStart(window, window === "day" ? `${period}T00:00:00Z` : `${period}:00:00Z`).getTime();
  const periods = [...Array(6).keys()].map((i) => new Date(end - (5 - i) * step));
  const answers = await Promise.all(
    periods.map((t) => api(`/charts/${encodeURIComponent(region)}?window=${window}&limit=100&at=${encodeURIComponent(t.toISOString().slice(0, 19) + "Z")}`)
      .then((r) => r.body).catch(() => ({ items: [] }))),
  );
  charts.series = { window, periods, answers };
}

function plotSelected() {
  if (!charts.series) return;
  const picked = new Set([...document.querySelectorAll("#top tbody tr")]
    .filter((row) => row.querySelector("input").checked).map((row) => row.dataset.track));
  drawSeries(charts.items.filter((item) => picked.has(item.track_id)));
}

function drawSeries(selected) {
  const { window, periods, answers } = charts.series;
  const series = selected.map((track) => ({
    label: track.name || track.track_id,
    values: answers.map((a) => (a.items.find((i) => i.track_id === track.track_id) || { plays: 0 }).plays),
  }));
  const labels = periods.map((t) => (window === "day" ? t.toISOString().slice(5, 10) : t.toISOString().slice(11, 13) + "h"));
  $("series").replaceChildren(lineChart(labels, series, "plays"));
}

// --- operations ------------------------------------------------------------------------------------------------

const ops = { loaded: false, timer: null };
const QUALITY_MODELS = ["hybrid", "als", "ease", "popularity"]; // the served ranking first, then the baselines

function opsStatus(text) {
  $("ops-status").textContent = text;
}

const utc = (seconds) => (seconds ? new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") : "");
const fixed = (value) => (value === null || value === undefined ? "—" : value.toFixed(4));

function took(execution) {
  if (!execution.stopped_at) return "running";
  const seconds = Math.round((Date.parse(execution.stopped_at) - Date.parse(execution.started_at)) / 1000);
  return seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
}

async function loadOperations() {
  ops.loaded = true;
  try {
    const [models, runs] = await Promise.all([api("/ops/models?limit=30"), api("/ops/executions?limit=10")]);
    renderModels(models.body);
    renderExecutions(runs.body.executions);
    opsStatus(`Updated ${new Date().toISOString().slice(11, 19)} UTC.`);
  } catch (error) {
    opsStatus(`Could not load the operations data: ${error.message}`);
  }
  clearTimeout(ops.timer);
  ops.timer = setTimeout(loadOperations, REFRESH_MS);
}

function renderModels(view) {
  const serving = view.serving;
  const test = serving && serving.test;
  $("serving-model").textContent = serving
    ? `Serving model ${serving.version}, promoted ${utc(serving.promoted_at)} UTC, home NDCG@10 ${fixed(serving.metrics["ndcg@10"])}.` +
      (test ? ` Online test: ${test.challenger} serves ${Math.round(test.share * 100)}% of listeners since ${utc(test.started_at)} UTC.` : "")
    : "No model is serving yet: every answer falls back to trending.";
  const rows = view.decisions.map((d) => el("tr", { "data-version": d.version },
    el("td", {}, d.version), el("td", {}, utc(d.decided_at)),
    el("td", { class: d.promote ? "promoted" : "kept" }, d.promote ? "promoted" : "kept the serving model"),
    el("td", {}, fixed(d.home_ndcg.hybrid)), el("td", {}, fixed(d.home_ndcg.popularity)),
    el("td", {}, d.serving_version || "none"),
    el("td", {}, d.online ? `${d.reason}. Online test: ${d.online.action}: ${d.online.reason}` : d.reason),
    el("td", {}, el("button", { type: "button", "aria-label": `Compare the reports of ${d.version}`, onclick: () => loadReports(d.version) }, "Compare"))));
  $("decisions").tBodies[0].replaceChildren(...rows);
  const history = [...view.decisions].reverse(); // oldest first
  const models = QUALITY_MODELS.filter((m) => history.some((d) => m in d.home_ndcg));
  const series = models.map((m) => ({ label: m === "hybrid" ? "served ranking" : m, values: history.map((d) => d.home_ndcg[m] ?? null) }));
  const labels = history.map((d) => utc(d.decided_at).slice(5, 10));
  $("quality").replaceChildren(history.length ? lineChart(labels, series, "NDCG@10") : el("p", {}, "No decisions yet."));
}

function renderExecutions(executions) {
  const rows = executions.map((e) => el("tr", { "data-execution": e.name },
    el("td", {}, e.pipeline), el("td", {}, e.name),
    el("td", { class: e.status === "SUCCEEDED" ? "" : "failed", title: e.cause || "" }, e.error ? `${e.status}: ${e.error}` : e.status),
    el("td", {}, e.started_at.slice(0, 16).replace("T", " ")), el("td", {}, took(e))));
  $("executions").tBodies[0].replaceChildren(...rows);
}

function comparison(title, rows, candidate, serving) {
  const head = el("tr", {}, el("th", { scope: "col" }, "Model"), el("th", { scope: "col" }, `Candidate ${candidate}`),
    el("th", { scope: "col" }, serving ? `Serving ${serving}` : "Serving (none)"));
  const body = rows.map(([name, a, b]) => el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, fixed(a)), el("td", {}, fixed(b))));
  return el("div", { class: "report" }, el("h4", {}, title), el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
}

async function loadReports(version) {
  $("report-version").textContent = version;
  try {
    const detail = (await api(`/ops/models/${encodeURIComponent(version)}`)).body;
    const mine = detail.candidate, theirs = (detail.serving && detail.serving.report) || {};
    const servingVersion = detail.serving && detail.serving.version;
    const section = (key, metric) => {
      const names = [...new Set([...Object.keys(mine[key] || {}), ...Object.keys(theirs[key] || {})])];
      return names.map((name) => [name, (mine[key] || {})[name]?.[metric], (theirs[key] || {})[name]?.[metric]]);
    };
    $("reports").replaceChildren(
      comparison("Home NDCG@10", section("home", "ndcg@10"), version, servingVersion),
      comparison("Next song hit rate@10", section("next", "hit_rate@10"), version, servingVersion),
      comparison("Continuation R-precision", section("continuation", "r_precision"), version, servingVersion),
    );
    opsStatus(`${version}: ${detail.decision.reason}.`);
  } catch (error) {
    opsStatus(`Could not load the reports of ${version}: ${error.message}`);
  }
}

// --- start -----------------------------------------------------------------------------------------------------

$("listener-form").addEventListener("submit", openHome);
$("new-listener").addEventListener("click", newListener);
$("skip").addEventListener("click", () => stop("skip"));
$("complete").addEventListener("click", () => stop("complete"));
$("chart-form").addEventListener("submit", loadCharts);
window.addEventListener("hashchange", show);
show();
