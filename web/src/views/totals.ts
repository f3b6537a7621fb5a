// Totals: the range's grand total, daily average and best day, as the
// API's texts.
import { byId, setTotal } from "../dom";
import type { GetInsightsResponse } from "../gen/heartlog/v1/stats_pb";
import type { RangeStats } from "../state";

export function renderTotals(s: RangeStats): void {
  setTotal(byId("grand-total"), s.total?.text ?? "", s.total?.totalSeconds ?? 0);
  setTotal(byId("daily-average"), s.dailyAverage?.text ?? "", s.dailyAverage?.totalSeconds ?? 0);
}

export function renderBestDay(ins: GetInsightsResponse): void {
  const best = byId("best-day");
  const day = ins.bestDay;
  if (!day || !day.date) {
    setTotal(best, "none yet", 0);
    best.dataset.date = "";
    return;
  }
  setTotal(best, `${day.date}: ${day.total?.text ?? ""}`, day.total?.totalSeconds ?? 0);
  best.dataset.date = day.date;
}
