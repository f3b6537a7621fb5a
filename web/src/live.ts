// Live: StatsService.WatchToday from sign-in to sign-out. Every message
// replaces today's total; the server pushes one whenever new heartbeats
// are stored, so the page never polls. A failed or ended stream shows
// "reconnecting" and reconnects with backoff (0.5 s doubling to 10 s,
// jittered), which also carries the page over a server restart.
import { isAbort, isUnauthenticated, isUnimplemented, stats } from "./api";
import { byId, setTotal } from "./dom";
import type { WatchTodayResponse } from "./gen/heartlog/v1/stats_pb";

const minBackoff = 500;
const maxBackoff = 10_000;

export interface LiveHandlers {
  /** today is each message; changed says new heartbeats were counted since the last. */
  today(m: WatchTodayResponse, changed: boolean): void;
  /** expired is called once when the session is no longer valid. */
  expired(e: unknown): void;
  /** settled is called once, when today's total is first shown or first failed. */
  settled(): void;
}

/** watch runs until signal aborts. */
export async function watch(signal: AbortSignal, h: LiveHandlers): Promise<void> {
  const status = byId("live-status");
  let backoff = minBackoff;
  let last: number | undefined;
  let filled = false;
  while (!signal.aborted) {
    try {
      for await (const m of stats.watchToday({}, { signal })) {
        status.textContent = "live";
        backoff = minBackoff;
        show(m);
        filled = true;
        h.settled();
        h.today(m, last !== undefined && m.lastHeartbeatAt !== last);
        last = m.lastHeartbeatAt;
      }
    } catch (e) {
      if (signal.aborted || isAbort(e)) return;
      if (isUnauthenticated(e)) {
        h.expired(e);
        return;
      }
      // A server without WatchToday still has the status bar: show it once.
      if (isUnimplemented(e) && !filled) {
        filled = await statusBar(signal);
      }
      h.settled();
    }
    status.textContent = "reconnecting";
    await sleep(backoff * (0.5 + Math.random() / 2), signal);
    backoff = Math.min(maxBackoff, backoff * 2);
  }
}

function show(m: WatchTodayResponse): void {
  const t = m.today?.grandTotal;
  setTotal(byId("today-total"), t?.text ?? "", t?.totalSeconds ?? 0);
}

async function statusBar(signal: AbortSignal): Promise<boolean> {
  try {
    const res = await stats.getStatusBar({}, { signal });
    const t = res.today?.grandTotal;
    setTotal(byId("today-total"), t?.text ?? "", t?.totalSeconds ?? 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
