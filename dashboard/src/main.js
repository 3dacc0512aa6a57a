// The command dashboard: sign-in, region scope, map, detail panel, live feed and charts.
import { ApiError, demoToken, get, getAll, liveStream, photoUrl, session } from "./api.js";
import * as charts from "./charts.js";
import { applyLabels, currentLang, onLangChange, t, toggleLang } from "./i18n.js";
import { OpsMap } from "./map.js";

const $ = (id) => document.getElementById(id);
const DAY = 86400000;
const state = {
  config: null,
  features: [],      // every region in the user's scope (grid-svc export)
  names: new Map(),  // code → name
  region: "",        // the region filter ("" = the whole scope)
  venueTypes: new Map(),
  map: null,
  stopLive: null,
  detail: null,      // what the detail panel shows, to refresh it on live events
  timers: {},
};

// --- helpers --------------------------------------------------------------------------------

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(currentLang() === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function debounce(key, ms, fn) {
  clearTimeout(state.timers[key]);
  state.timers[key] = setTimeout(fn, ms);
}

const inRegion = (code) => !state.region || (code || "").startsWith(state.region);
const regionParam = () => state.region || undefined;
const nameOf = (code) => state.names.get(code) || code;

// --- sign-in --------------------------------------------------------------------------------

async function boot() {
  applyLabels();
  for (const btn of document.querySelectorAll(".lang-toggle")) btn.addEventListener("click", toggleLang);
  onLangChange(() => { if (!$("app").hidden) { renderUser(); fillRegionFilter(); refreshAll(); } });
  state.config = await fetch("/config.json").then((r) => r.json());
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    await signIn($("token").value.trim());
  });
  $("signout").addEventListener("click", signOut);
  $("detail-close").addEventListener("click", clearDetail);
  $("region-filter").addEventListener("change", (e) => { state.region = e.target.value; applyRegion(); });
  const demos = state.config.demo_identities || [];
  if (demos.length) {
    $("demo-block").hidden = false;
    for (const d of demos) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn demo";
      b.dataset.identity = d.key;
      b.innerHTML = `<b data-zh="${esc(d.zh)}" data-en="${esc(d.en)}"></b><small>${esc(d.scopes.join(", "))}</small>`;
      b.addEventListener("click", async () => signIn(await demoToken(d.key)));
      $("demo-identities").append(b);
    }
    const label = () => { for (const b of document.querySelectorAll(".demo b")) b.textContent = b.dataset[currentLang()]; };
    label();
    onLangChange(label);
  }
  if (session.token && session.claims() && session.claims().exp * 1000 > Date.now()) await start();
  else showSignIn();
}

function showSignIn(message = "") {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
}

async function signIn(token) {
  if (!token) return;
  session.token = token;
  try {
    await get("grid", "regions", { limit: 1 });
  } catch (err) {
    session.token = null;
    showSignIn(err instanceof ApiError && err.status === 401 ? t("signin.invalid") : `${t("signin.failed")}: ${err.message}`);
    return;
  }
  await start();
}

function signOut() {
  state.stopLive?.();
  session.token = null;
  location.reload();
}

function renderUser() {
  const c = session.claims() || {};
  const demo = (state.config.demo_identities || []).find((d) => `demo-${d.key}` === c.sub);
  const who = demo ? demo[currentLang()] : c.sub;
  $("user-chip").innerHTML = `<b>${esc(who)}</b><small>${esc((c.roles || []).join(", "))} · ${esc((c.scopes || []).join(", "))}</small>`;
  $("foot-scope").textContent = `${t("scope.label")}: ${(c.scopes || []).map((s) => (s === "*" ? "*" : `${nameOf(s)} (${s})`)).join(", ")}`;
}

// --- start-up -------------------------------------------------------------------------------

async function start() {
  $("signin").hidden = true;
  $("app").hidden = false;
  applyLabels();
  if (!state.map) {
    state.map = new OpsMap($("map"), {
      tileUrl: state.config.tile_url,
      tileAttribution: state.config.tile_attribution,
      onGrid: showGrid,
      onCheckpoint: (f) => showCheckpoint(f.id),
      onHouse: showHouse,
    });
    window.addEventListener("resize", () => { state.map.resize(); charts.resizeAll(); });
  }
  await loadRegions();
  renderUser();
  fillRegionFilter();
  const types = await get("inspection", "venue-types").catch(() => []);
  state.venueTypes = new Map(types.map((v) => [v.code, v.name]));
  applyRegion();
  startClock();
  state.stopLive = liveStream({ onEvent: onLiveEvent, onState: setLiveState });
}

/** The regions the user may see: the subtree of each scope, never more (the map follows scope). */
async function loadRegions() {
  const scopes = session.claims()?.scopes || [];
  let roots = scopes.filter((s) => /^\d{6}(\d{3}){0,3}$/.test(s));
  const loose = scopes.filter((s) => !roots.includes(s));
  for (const prefix of loose) {
    const districts = await getAll("grid", "regions", { level: "district", under: prefix === "*" ? undefined : prefix });
    roots.push(...districts.map((d) => d.code));
  }
  roots = roots.filter((r, i) => !roots.some((o, j) => j !== i && r.startsWith(o) && o !== r));
  const collections = await Promise.all(roots.map((code) => get("grid", `regions/${code}/export`).catch(() => ({ features: [] }))));
  const covered = (code) => scopes.includes("*") || scopes.some((s) => code.startsWith(s));
  state.features = collections.flatMap((c) => c.features).filter((f) => covered(f.properties.code));
  state.names = new Map(state.features.map((f) => [f.properties.code, f.properties.name]));
}

function fillRegionFilter() {
  const select = $("region-filter");
  const options = [`<option value="">${esc(t("filter.all"))}</option>`];
  const levels = ["street", "community"];
  const regions = state.features.filter((f) => levels.includes(f.properties.level)).map((f) => f.properties).sort((a, b) => a.code.localeCompare(b.code));
  for (const r of regions) {
    const indent = r.level === "community" ? "\u00a0\u00a0\u00a0" : "";
    options.push(`<option value="${r.code}">${indent}${esc(r.name)} · ${r.code}</option>`);
  }
  select.innerHTML = options.join("");
  select.value = state.region;
}

function applyRegion() {
  const shown = state.features.filter((f) => inRegion(f.properties.code));
  state.map.setRegions(shown);
  $("kpi-grids").textContent = shown.filter((f) => f.properties.level === "grid").length;
  clearDetail();
  refreshAll();
}

async function refreshAll() {
  await Promise.all([refreshMap(), refreshHouses(), refreshCharts()]);
}

// --- map data -------------------------------------------------------------------------------

async function refreshMap() {
  const [aggregates, checkpoints] = await Promise.all([
    get("inspection", "map/aggregates", { level: "grid", region: regionParam() }).then((r) => r.items).catch(() => []),
    mapCheckpoints(),
  ]);
  const visible = aggregates.filter((a) => inRegion(a.code));
  state.map.setGridStates(visible);
  state.map.setCheckpoints(checkpoints);
  const sum = (k) => visible.reduce((n, a) => n + (a[k] || 0), 0);
  $("kpi-checkpoints").textContent = sum("total");
  $("kpi-green").textContent = sum("green");
  $("kpi-yellow").textContent = sum("yellow");
  $("kpi-red").textContent = sum("red");
  $("kpi-hazards").textContent = sum("open_hazards");
  state.lastAggregates = visible;
}

async function mapCheckpoints() {
  const features = [];
  let cursor;
  for (let i = 0; i < 10; i += 1) {
    const page = await get("inspection", "map/checkpoints", { region: regionParam(), cursor }).catch(() => null);
    if (!page) break;
    features.push(...page.features);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return features.filter((f) => inRegion(f.properties.grid_code));
}

async function refreshHouses() {
  const houses = await getAll("population", "houses", { region: regionParam(), limit: 200 }).catch(() => []);
  const shown = houses.filter((h) => inRegion(h.grid_code));
  state.map.setHouses(shown);
  $("kpi-overcrowded").textContent = shown.filter((h) => h.overcrowded_units?.length).length;
}

// --- charts ---------------------------------------------------------------------------------

async function refreshCharts() {
  const until = new Date();
  const since = new Date(until.getTime() - 30 * DAY);
  const period = { since: since.toISOString(), until: until.toISOString(), region: regionParam() };
  const tasks = [
    get("inspection", "map/aggregates", { level: "grid", region: regionParam() }).then((r) => {
      const rows = r.items.filter((a) => inRegion(a.code));
      charts.hazardsByType(rows, state.venueTypes);
      charts.missedByGrid(rows, state.names);
    }),
    get("inspection", "evaluation/regions", { ...period, level: "community" }).then((r) => charts.closureByCommunity(r.items.filter((x) => inRegion(x.code)), state.names)),
    get("inspection", "evaluation/inspectors", period).then((r) => charts.inspectorRanking(r.items)),
    get("population", "staffing", { region: regionParam() }).then((r) => {
      const report = { ...r, grids: r.grids.filter((g) => inRegion(g.grid_code)) };
      charts.staffing(report, state.names);
      $("kpi-understaffed").textContent = report.grids.filter((g) => g.understaffed).length;
    }),
    departmentRows().then((rows) => charts.departmentSla(rows)),
  ];
  await Promise.all(tasks.map((p) => p.catch((err) => console.warn("chart data unavailable:", err.message))));
}

async function departmentRows() {
  const departments = await getAll("notify", "departments", {});
  const shown = departments.filter((d) => !state.region || d.jurisdictions.some((j) => j.startsWith(state.region) || state.region.startsWith(j)));
  const to = new Date();
  const from = new Date(to.getTime() - 30 * DAY);
  return Promise.all(shown.map(async (d) => ({
    ...d,
    evaluation: await get("notify", `departments/${d.id}/evaluation`, { from: from.toISOString(), to: to.toISOString() }).catch(() => null),
  })));
}

// --- detail panel ---------------------------------------------------------------------------

function setDetail(kind, id, html) {
  state.detail = { kind, id };
  $("detail-body").innerHTML = html;
  $("detail-body").dataset.kind = kind;
  $("detail-body").dataset.id = id;
  $("detail-close").hidden = false;
}

function clearDetail() {
  state.detail = null;
  $("detail-body").innerHTML = `<p class="muted">${esc(t("detail.empty"))}</p>`;
  delete $("detail-body").dataset.kind;
  $("detail-close").hidden = true;
  state.map?.highlight(null);
}

const pill = (status, label) => `<span class="pill ${status}">${esc(label)}</span>`;
const row = (label, value) => `<div class="kv"><span>${esc(label)}</span><b>${value}</b></div>`;

function hazardItem(h) {
  return `<li class="hazard-item" data-hazard-id="${esc(h.id)}">
    <div class="line">${pill(h.severity === "major" ? "red" : "yellow", t(`severity.${h.severity}`))}
      <b>${esc(h.item_title)}</b><span class="state">${esc(t(`hazard.${h.state}`, h.state))}</span></div>
    <div class="sub">${esc(h.description || "")}</div>
    <div class="sub">${esc(t("detail.deadline"))}: ${fmtTime(h.deadline)} · ${esc(h.reported_by)}</div>
    ${photoStrip(h.photo_hashes)}</li>`;
}

function photoStrip(hashes) {
  if (!hashes || !hashes.length) return "";
  return `<div class="photos">${hashes.slice(0, 4).map((s) => `<img alt="${esc(t("detail.photos"))}" data-photo="${esc(s)}">`).join("")}</div>`;
}

async function loadPhotos() {
  for (const img of $("detail-body").querySelectorAll("img[data-photo]:not([src])")) {
    photoUrl(img.dataset.photo).then((url) => { img.src = url; }).catch(() => img.classList.add("broken"));
  }
}

async function showGrid(props) {
  state.map.highlight(props.code);
  setDetail("grid", props.code, `<p class="muted">${esc(t("detail.loading"))}</p>`);
  const [members, venues, hazards] = await Promise.all([
    get("grid", `grids/${props.code}/members`).catch(() => []),
    getAll("inspection", "venues", { region: props.code }, 3).catch(() => []),
    getAll("inspection", "hazards", { region: props.code, state: "unclosed" }, 3).catch(() => []),
  ]);
  if (state.detail?.id !== props.code) return;
  const status = (state.lastAggregates || []).find((a) => a.code === props.code);
  const colour = !status || !status.total ? "none" : status.red ? "red" : status.yellow ? "yellow" : "green";
  setDetail("grid", props.code, `
    <div class="detail-head"><span class="kind">${esc(t("detail.grid"))}</span>${pill(colour, t(`status.${colour}`))}</div>
    <h3>${esc(props.name)}</h3>
    <div class="kvs">
      ${row(t("detail.code"), esc(props.code))}
      ${row(t("detail.class"), esc(t(`class.${props.grid_class}`, props.grid_class || "–")))}
      ${row(t("detail.households"), esc(props.households ?? "–"))}
      ${row(t("detail.residents"), esc(props.residents ?? "–"))}
    </div>
    <h4>${esc(t("detail.members"))} <span class="count">${members.length}</span></h4>
    <ul class="list">${members.map((m) => `<li><span class="role">${esc(t(`role.${m.role}`, m.role))}</span> <b>${esc(m.name)}</b> <span class="muted">${esc(m.phone || "")}</span></li>`).join("") || `<li class="muted">${esc(t("detail.none"))}</li>`}</ul>
    <h4>${esc(t("detail.hazards"))} <span class="count">${hazards.length}</span></h4>
    <ul class="list">${hazards.map(hazardItem).join("") || `<li class="muted">${esc(t("detail.none"))}</li>`}</ul>
    <h4>${esc(t("detail.venues"))} <span class="count">${venues.length}</span></h4>
    <ul class="list">${venues.map((v) => `<li><b>${esc(v.name)}</b> <span class="tag">${esc(state.venueTypes.get(v.venue_type) || v.venue_type)}</span><div class="sub">${esc(v.address)}</div></li>`).join("") || `<li class="muted">${esc(t("detail.none"))}</li>`}</ul>`);
  loadPhotos();
}

async function showCheckpoint(id) {
  setDetail("checkpoint", id, `<p class="muted">${esc(t("detail.loading"))}</p>`);
  const cp = await get("inspection", `checkpoints/${id}`);
  const [venue, hazards, inspections] = await Promise.all([
    get("inspection", `venues/${cp.venue_id}`).catch(() => null),
    getAll("inspection", "hazards", { checkpoint_id: id, state: "unclosed" }, 2).catch(() => []),
    get("inspection", "inspections", { checkpoint_id: id, limit: 5 }).then((r) => r.items).catch(() => []),
  ]);
  if (state.detail?.id !== id) return;
  state.map.highlight(cp.grid_code);
  setDetail("checkpoint", id, `
    <div class="detail-head"><span class="kind">${esc(t("detail.checkpoint"))}</span>${pill(cp.colour, t(`status.${cp.colour}`))}</div>
    <h3>${esc(venue ? venue.name : "")} · ${esc(cp.name)}</h3>
    <div class="kvs">
      ${row(t("detail.venue"), esc(state.venueTypes.get(cp.venue_type) || cp.venue_type))}
      ${venue ? row(t("detail.address"), esc(venue.address)) : ""}
      ${row(t("detail.grid"), esc(nameOf(cp.grid_code)))}
      ${row(t("detail.lastInspected"), fmtTime(cp.last_inspected_at))}
      ${row(t("detail.due"), fmtTime(cp.due_at))}
    </div>
    <h4>${esc(t("detail.hazards"))} <span class="count">${hazards.length}</span></h4>
    <ul class="list hazards">${hazards.map(hazardItem).join("") || `<li class="muted">${esc(t("detail.none"))}</li>`}</ul>
    <h4>${esc(t("detail.inspections"))} <span class="count">${inspections.length}</span></h4>
    <ul class="list">${inspections.map((i) => `<li class="inspection-item">
      <div class="line">${pill(i.passed ? "green" : "red", i.passed ? t("detail.passed") : t("detail.failed"))}
        <b>${fmtTime(i.scanned_at)}</b><span class="muted">${esc(i.inspector)} · ${esc(i.on_time ? t("detail.onTime") : t("detail.late"))}</span></div>
      ${i.failed_items.length ? `<div class="sub">${esc(i.failed_items.join(", "))}</div>` : ""}
      ${photoStrip(i.photos)}</li>`).join("") || `<li class="muted">${esc(t("detail.none"))}</li>`}</ul>`);
  loadPhotos();
}

function showHouse(h) {
  const crowded = h.overcrowded_units?.length > 0;
  setDetail("house", h.id, `
    <div class="detail-head"><span class="kind">${esc(t("detail.house"))}</span>${crowded ? pill("red", t("legend.overcrowded")) : ""}</div>
    <h3>${esc(h.address)}</h3>
    <div class="kvs">
      ${row(t("detail.code"), esc(h.house_code))}
      ${row(t("detail.grid"), esc(nameOf(h.grid_code)))}
      ${row(t("detail.area"), `${esc(h.floor_area_m2)} m²`)}
      ${row(t("detail.occupants"), esc(h.occupants))}
      ${crowded ? row(t("detail.overcrowdedUnits"), esc(h.overcrowded_units.join(", "))) : ""}
    </div>`);
}

// --- live feed ------------------------------------------------------------------------------

function setLiveState(s) {
  const el = $("live-status");
  el.className = `live ${s}`;
  el.dataset.state = s;
  el.querySelector("span").dataset.i18n = `live.${s}`;
  el.querySelector("span").textContent = t(`live.${s}`);
}

function describe(evt) {
  const d = evt.data || {};
  const kind = evt.type.replace(/^gridgov\.[a-z]+\./, "");
  switch (kind) {
    case "hazard.reported": return { kind, tone: "red", text: `${d.venue?.name || ""} · ${d.item_title} (${t(`severity.${d.severity}`)})` };
    case "hazard.state_changed": return { kind, tone: d.to_state === "closed" ? "green" : "yellow", text: `${t(`hazard.${d.from_state}`, d.from_state || "")} → ${t(`hazard.${d.to_state}`, d.to_state)}` };
    case "checkpoint.status_changed": return { kind, tone: d.to_colour, text: `${t(`status.${d.from_colour}`)} → ${t(`status.${d.to_colour}`)}` };
    case "checkpoint.missed": return { kind, tone: "yellow", text: d.venue?.name || "" };
    case "inspection.recorded": return { kind, tone: d.passed ? "green" : "red", text: d.passed ? t("detail.passed") : t("detail.failed") };
    case "dispatch.state_changed": return { kind, tone: "blue", text: `${d.department_name} · ${t(`dispatch.${d.to_state}`, d.to_state)}` };
    case "house.overcrowded": return { kind, tone: "red", text: d.address || d.house_code || "" };
    default: return { kind, tone: "muted", text: "" };
  }
}

function onLiveEvent(evt) {
  if (evt.gridcode && !inRegion(evt.gridcode)) return;
  const { kind, tone, text } = describe(evt);
  const feed = $("feed");
  feed.querySelector(".muted")?.remove();
  const li = document.createElement("li");
  li.className = `feed-item ${tone}`;
  li.dataset.type = evt.type;
  li.innerHTML = `<time>${fmtTime(evt.time)}</time><div><b>${esc(t(`event.${kind}`, kind))}</b> <span class="muted">${esc(nameOf(evt.gridcode || ""))}</span><div class="sub">${esc(text)}</div></div>`;
  const checkpointId = evt.data?.checkpoint_id;
  if (checkpointId) { li.classList.add("clickable"); li.addEventListener("click", () => showCheckpoint(checkpointId)); }
  feed.prepend(li);
  while (feed.children.length > 60) feed.lastElementChild.remove();
  $("feed-count").textContent = String(Number($("feed-count").textContent) + 1);

  if (/hazard|checkpoint|inspection\.recorded/.test(kind)) {
    debounce("map", 200, refreshMap);
    if (state.detail?.kind === "checkpoint" && state.detail.id === checkpointId) debounce("detail", 300, () => showCheckpoint(checkpointId));
  }
  if (kind.startsWith("house.") || kind.startsWith("residence.")) debounce("houses", 500, refreshHouses);
  debounce("charts", 2500, refreshCharts);
}

function startClock() {
  const tick = () => { $("clock").textContent = new Date().toLocaleString(currentLang() === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai", hour12: false }); };
  tick();
  clearInterval(state.timers.clock);
  state.timers.clock = setInterval(tick, 1000);
}

boot().catch((err) => showSignIn(err.message));
