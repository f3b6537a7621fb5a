// The dashboard's entry point: sign-in, the selection controls, and the
// loading of every view. Views only display what the API computed; this
// file decides what to ask for and tracks the page's state
// (document.body.dataset.state, see DASHBOARD-CONTRACT.md).
import {
  dropEarly,
  early,
  errorText,
  isAbort,
  isUnauthenticated,
  isUnimplemented,
  SessionError,
  settings,
  signIn,
  signOut,
  stats,
} from "./api";
import { measureCharts } from "./chart";
import { byId, el, fillTable } from "./dom";
import { today, timeZones } from "./format";
import type { Settings } from "./gen/heartlog/v1/settings_pb";
import { watch } from "./live";
import { SettingsService } from "./gen/heartlog/v1/settings_pb";
import { StatsService } from "./gen/heartlog/v1/stats_pb";
import { loadRequests, options, readURL, urlQuery, type Selection } from "./state";
import { renderBreakdowns } from "./views/breakdowns";
import { renderDaily } from "./views/daily";
import { renderHeatMap } from "./views/heatmap";
import { renderInsights } from "./views/insights";
import { bindSettings, showSettings } from "./views/settings";
import { renderTimeline } from "./views/timeline";
import { renderBestDay, renderTotals } from "./views/totals";

type State = "signed-out" | "loading" | "ready" | "error";

const ui = {
  signinView: byId("signin-view"),
  dashboard: byId("dashboard-view"),
  signin: byId<HTMLFormElement>("signin"),
  apiKey: byId<HTMLInputElement>("api-key"),
  signinError: byId("signin-error"),
  error: byId("error"),
  username: byId("username"),
  signout: byId<HTMLButtonElement>("signout"),
  selection: byId<HTMLFormElement>("selection"),
  range: byId<HTMLSelectElement>("range"),
  custom: byId("custom-range"),
  start: byId<HTMLInputElement>("range-start"),
  end: byId<HTMLInputElement>("range-end"),
  tz: byId<HTMLSelectElement>("view-timezone"),
  filter: byId("project-filter"),
  filterName: byId("project-filter-name"),
  clearProject: byId<HTMLButtonElement>("clear-project"),
  timelineForm: byId<HTMLFormElement>("timeline-form"),
  timelineDate: byId<HTMLInputElement>("timeline-date"),
  timelineSlice: byId<HTMLSelectElement>("timeline-slice"),
};

// The signed-in session: aborting it cancels every call and the live stream.
let session: AbortController | undefined;
// entered: the dashboard is shown (the session was found valid); shown
// resolves then, and the views draw only after it, at their real size.
let entered = false;
let shown: Promise<void> = Promise.resolve();
let showDashboard = () => {};
let user: Settings | undefined;
// settingsIn resolves once start has asked for the user's settings (user
// is then set, or stays unknown on a server without SettingsService).
let settingsIn: Promise<void> = Promise.resolve();
let settingsKnown = () => {};
let signedInAs = "";
const sel: Selection = { range: "last_7_days", customStart: "", customEnd: "", tz: "", project: "" };
// The range's last day, once known; the timeline shows it unless the user picked a day.
let rangeEnd = "";
let timelinePicked = false;

// Load tracking: the state is "ready" once every call of the current
// selection has been answered and drawn.
let inflight = 0;
let failed = false;
let markPending = false;
let refreshPending = false;
let gen = 0;
let timelineGen = 0;

function setState(s: State): void {
  document.body.dataset.state = s;
}

function showError(msg: string): void {
  ui.error.textContent = msg;
  ui.error.hidden = msg === "";
}

function begin(mark: boolean): void {
  if (inflight === 0) {
    failed = false;
    showError("");
  }
  if (mark) markPending = true;
  setState("loading");
}

/** track counts a load of generation g until it is answered and drawn. */
function track(p: Promise<unknown>, isCurrent: () => boolean): void {
  inflight++;
  p.catch((e) => {
    if (isCurrent()) fail(e);
  }).finally(() => {
    inflight--;
    if (inflight === 0) settle();
  });
}

function settle(): void {
  if (!session || !entered) return;
  if (refreshPending) {
    refreshPending = false;
    loadAll(false);
    return;
  }
  if (failed) {
    setState("error");
    return;
  }
  setState("ready");
  if (markPending) {
    markPending = false;
    performance.mark("dashboard-ready");
  }
}

function fail(e: unknown): void {
  if (isAbort(e)) return;
  if (isUnauthenticated(e)) {
    if (entered) expire(e);
    return;
  }
  failed = true;
  showError(errorText(e));
}

function userTz(): string {
  return user?.timezone ?? "";
}

/** loadAll fetches every view of the selection, all calls at once where it can. */
function loadAll(mark: boolean): void {
  if (!session) return;
  const signal = session.signal;
  const g = ++gen;
  const tg = ++timelineGen;
  const current = () => g === gen;
  // show draws a view once its data is in and the dashboard is on screen,
  // and marks when it is drawn ("drawn <view>", for the benchmark).
  const show = <T>(view: string, p: Promise<T>, draw: (v: T) => unknown) =>
    track(
      p.then(async (v) => {
        await shown;
        if (!current()) return;
        await draw(v);
        performance.mark("drawn " + view);
      }),
      current,
    );
  begin(mark);
  if (location.search !== urlQuery(sel)) history.replaceState(null, "", urlQuery(sel));
  const req = loadRequests(sel, userTz());
  if (!req.valid) {
    track(Promise.reject(new Error("Choose a start date on or before the end date.")), current);
    return;
  }
  // One call for the range's totals, days and insights: the server reads
  // and accounts the range once rather than once for each. On the page's
  // first load, boot.ts has sent it (and the heat map's) already.
  const rangeP = early(StatsService.method.getRange, req.range, signal) ?? stats.getRange(req.range, { signal });
  const statsP = rangeP.then((r) => r.stats ?? missing("stats"));
  const end = req.end;
  const statsEnd = () => statsP.then((s) => s.end);
  const endP = end
    ? Promise.resolve(end)
    : Promise.race([statsEnd(), settingsIn.then(() => (userTz() ? today(sel.tz || userTz()) : statsEnd()))]);

  show("totals", statsP, (s) => {
    renderTotals(s);
    renderBreakdowns(s.breakdown, sel.project, selectProject);
  });
  show("insights", rangeP.then((r) => r.insights ?? missing("insights")), (ins) => {
    renderBestDay(ins);
    return renderInsights(ins);
  });
  show(
    "heatmap",
    early(StatsService.method.getHeatMap, req.heatmap, signal) ?? stats.getHeatMap(req.heatmap, { signal }),
    (h) => renderHeatMap(h.days),
  );
  show("daily", rangeP, (r) => renderDaily(r.summaries?.days ?? [], r.stats?.breakdown?.projects ?? []));
  track(
    endP.then((end) => {
      if (!current()) return;
      rangeEnd = end;
      if (!timelinePicked) ui.timelineDate.value = end;
      return timeline(tg).then(() => performance.mark("drawn timeline"));
    }),
    current,
  );
}

function missing(part: string): never {
  throw new Error(`the server's GetRange answer has no ${part}`);
}

/** loadTimeline re-reads the timeline alone (its day or slice changed). */
function loadTimeline(): void {
  if (!session) return;
  const tg = ++timelineGen;
  begin(true);
  track(timeline(tg), () => tg === timelineGen);
}

async function timeline(tg: number): Promise<void> {
  const slice = ui.timelineSlice.value === "entity" ? "entity" : "project";
  const date = ui.timelineDate.value;
  if (!date) return;
  const res = await stats.getDurations({ date, sliceBy: slice, options: options(sel) }, { signal: session?.signal });
  await shown;
  if (tg === timelineGen) await renderTimeline(res.durations, slice, sel.tz || userTz());
}

/** refresh re-reads the views after a live update, once per burst. */
function refresh(): void {
  if (!rangeEnd || rangeEnd < today(sel.tz || userTz())) return; // the range ends before today
  if (inflight > 0) {
    refreshPending = true;
    return;
  }
  loadAll(false);
}

function selectProject(name: string): void {
  sel.project = name;
  showProject();
  loadAll(true);
  ui.clearProject.focus();
}

function showProject(): void {
  ui.filter.dataset.project = sel.project;
  ui.filterName.textContent = sel.project || "all projects";
  ui.clearProject.disabled = sel.project === "";
}

// fillTimeZones shows the view's time zone in the picker. The other zones
// (some 400 options, most of the page's elements) are added when the
// picker is first used (focused, by keyboard or pointer), not with the page.
function fillTimeZones(): void {
  zonesListed = false;
  const shown = [...new Set([userTz(), sel.tz].filter(Boolean))];
  const opts = shown.map((z) => el("option", { value: z }, z));
  if (!userTz()) opts.unshift(el("option", { value: "" }, "Account setting"));
  ui.tz.replaceChildren(...opts);
  // An empty sel.tz follows the user's setting, which the select shows.
  ui.tz.value = sel.tz || userTz();
}

let zonesListed = false;

function listTimeZones(): void {
  if (zonesListed) return;
  zonesListed = true;
  const value = ui.tz.value;
  const opts = timeZones(userTz(), sel.tz).map((z) => el("option", { value: z }, z));
  if (!userTz()) opts.unshift(el("option", { value: "" }, "Account setting"));
  ui.tz.replaceChildren(...opts);
  ui.tz.value = value;
}

// --- signing in and out

function showSignIn(msg: string): void {
  session?.abort();
  session = undefined;
  entered = false;
  user = undefined;
  sel.project = "";
  sel.tz = "";
  clearViews();
  ui.dashboard.hidden = true;
  ui.signinView.hidden = false;
  ui.signinError.textContent = msg;
  setState("signed-out");
  ui.apiKey.focus();
}

// clearViews empties what the last user saw, so that the next one to sign
// in on this page never glimpses it.
function clearViews(): void {
  for (const id of ["today-total", "grand-total", "daily-average", "best-day"]) {
    const e = byId(id);
    e.textContent = "…";
    e.dataset.seconds = "0";
  }
  byId("best-day").dataset.date = "";
  byId("username").textContent = "";
  for (const t of document.querySelectorAll<HTMLTableElement>("table.visually-hidden")) fillTable(t, [], []);
  for (const l of document.querySelectorAll("section.breakdown ol")) l.replaceChildren();
  byId("live-status").textContent = "reconnecting";
}

function expire(e: unknown): void {
  if (!session) return;
  showSignIn(errorText(e));
}

function newSession(): void {
  session?.abort();
  session = new AbortController();
  entered = false;
  shown = new Promise((resolve) => (showDashboard = resolve));
  settingsIn = new Promise((resolve) => (settingsKnown = resolve));
}

function enterDashboard(settingsUnavailable?: string): void {
  if (!session) return;
  entered = true;
  ui.signinView.hidden = true;
  ui.dashboard.hidden = false;
  ui.username.textContent = user?.username || signedInAs;
  fillTimeZones();
  showProject();
  showSettings(user, settingsUnavailable);
  // Every chart's size, read once now that the dashboard is laid out and
  // before any view fills it.
  measureCharts();
  // Today's total is one of the views: the first state counts toward "ready".
  let settled = () => {};
  track(new Promise<void>((resolve) => (settled = resolve)), () => true);
  void watch(session.signal, {
    today: (_, changed) => {
      if (changed) refresh();
    },
    expired: expire,
    settled: () => {
      performance.mark("drawn live");
      settled();
    },
  });
  showDashboard();
  if (inflight === 0) settle();
}

/**
 * start finds out whether the browser has a session and shows the right
 * view. The reads go out at once, beside GetSettings: they need nothing
 * from it (an empty time zone is the user's own), and are drawn as soon as
 * the dashboard is shown.
 */
async function start(): Promise<void> {
  setState("loading");
  newSession();
  loadAll(true);
  const signal = session!.signal;
  const settingsP = early(SettingsService.method.getSettings, {}, signal) ?? settings.getSettings({}, { signal });
  // What boot.ts sent is for this first load only (and only this session).
  dropEarly();
  try {
    user = (await settingsP).settings;
    settingsKnown();
    enterDashboard();
  } catch (e) {
    if (isAbort(e)) return;
    if (isUnauthenticated(e)) return showSignIn(signInMessage(e));
    if (!isUnimplemented(e)) return startFailed(e);
    // A server without SettingsService yet: ask the status bar who we are.
    try {
      await stats.getStatusBar({}, { signal });
      user = undefined;
      settingsKnown();
      enterDashboard(errorText(e));
    } catch (e2) {
      if (isAbort(e2)) return;
      if (isUnauthenticated(e2)) return showSignIn(signInMessage(e2));
      startFailed(e2);
    }
  }
}

// signInMessage is what the sign-in view says on a load without a valid
// session: nothing for a browser that simply has none, the API's reason
// for one it refused (a revoked session, a rotated key).
function signInMessage(e: unknown): string {
  const msg = errorText(e);
  return msg.startsWith("missing API key") ? "" : msg;
}

function startFailed(e: unknown): void {
  showSignIn("");
  showError(errorText(e));
  setState("error");
}

// --- controls

ui.signin.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  ui.signinError.textContent = "";
  ui.signinView.setAttribute("aria-busy", "true");
  try {
    signedInAs = await signIn(ui.apiKey.value.trim());
    ui.apiKey.value = "";
    showError("");
    await start();
  } catch (e) {
    ui.signinError.textContent = e instanceof SessionError ? e.message : errorText(e);
  } finally {
    ui.signinView.removeAttribute("aria-busy");
  }
});

ui.signout.addEventListener("click", async () => {
  try {
    await signOut();
  } catch (e) {
    showError(errorText(e));
    return;
  }
  showError("");
  showSignIn("");
});

ui.range.addEventListener("change", () => {
  const custom = ui.range.value === "custom";
  ui.custom.hidden = !custom;
  if (custom) {
    // Start from the range shown so far.
    ui.start.value ||= sel.customStart || rangeEnd;
    ui.end.value ||= sel.customEnd || rangeEnd;
    ui.start.focus();
    return;
  }
  sel.range = ui.range.value;
  timelinePicked = false;
  loadAll(true);
});

ui.selection.addEventListener("submit", (ev) => {
  ev.preventDefault();
  sel.range = ui.range.value;
  sel.customStart = ui.start.value;
  sel.customEnd = ui.end.value;
  timelinePicked = false;
  loadAll(true);
});

ui.tz.addEventListener("focus", listTimeZones);
ui.tz.addEventListener("pointerdown", listTimeZones);
ui.tz.addEventListener("change", () => {
  sel.tz = ui.tz.value === userTz() ? "" : ui.tz.value;
  timelinePicked = false;
  loadAll(true);
});

ui.clearProject.addEventListener("click", () => {
  sel.project = "";
  showProject();
  loadAll(true);
});

ui.timelineDate.addEventListener("change", () => {
  timelinePicked = true;
  loadTimeline();
});
ui.timelineSlice.addEventListener("change", loadTimeline);
ui.timelineForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  loadTimeline();
});

bindSettings(
  (s) => {
    user = s;
    ui.username.textContent = s.username;
    fillTimeZones();
    loadAll(true);
  },
  (e) => {
    if (!isUnauthenticated(e)) return false;
    expire(e);
    return true;
  },
);

// Leaving the page ends its calls and its live stream at once. Over
// HTTP/1.1 a browser keeps at most 6 connections to a server, and a stream
// left open by a page being unloaded (or frozen in the back/forward cache)
// holds one: a few navigations would queue every call behind them. A page
// restored from that cache starts again.
addEventListener("pagehide", () => session?.abort());
addEventListener("pageshow", (ev) => {
  if (ev.persisted) void start();
});

// The range may come from the address (?range=last_year): the picker
// shows it before the first load.
readURL(sel, location.search, (r) => [...ui.range.options].some((o) => o.value === r));
ui.range.value = sel.range;
ui.custom.hidden = sel.range !== "custom";
ui.start.value = sel.customStart;
ui.end.value = sel.customEnd;
void start();
