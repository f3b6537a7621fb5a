// Insights: coding time by weekday and by hour of the day over the range,
// from GetRange's insights (as GetInsights gives them), drawn by hand (bars.ts).
import { Bars } from "../bars";
import { byId, el, fillTable } from "../dom";
import type { GetInsightsResponse } from "../gen/heartlog/v1/stats_pb";

let weekdays: Bars | undefined;
let hourly: Bars | undefined;

export function renderInsights(ins: GetInsightsResponse): void {
  fillTable(
    byId<HTMLTableElement>("weekdays-table"),
    ["Weekday", "Total", "Average"],
    ins.weekdays.map((w) =>
      el(
        "tr",
        { "data-weekday": w.name, "data-seconds": w.total?.totalSeconds ?? 0 },
        el("th", { scope: "row" }, w.name),
        el("td", {}, w.total?.text ?? ""),
        el("td", {}, w.average?.text ?? ""),
      ),
    ),
  );
  fillTable(
    byId<HTMLTableElement>("hours-table"),
    ["Hour", "Total"],
    ins.hours.map((h, i) =>
      el("tr", { "data-hour": i, "data-seconds": h.totalSeconds }, el("th", { scope: "row" }, `${String(i).padStart(2, "0")}:00`), el("td", {}, h.text)),
    ),
  );

  weekdays ??= new Bars(byId("weekdays-chart"), 32);
  hourly ??= new Bars(byId("hours-chart"), 32);
  const bars = (labels: string[], titles: string[], seconds: number[]) => ({ labels, titles, series: [{ name: "", values: seconds.map((s) => s / 3600) }] });
  weekdays.render(bars(ins.weekdays.map((w) => w.name.slice(0, 3)), ins.weekdays.map((w) => w.name), ins.weekdays.map((w) => w.total?.totalSeconds ?? 0)));
  hourly.render(bars(ins.hours.map((_, i) => String(i)), ins.hours.map((_, i) => `${String(i).padStart(2, "0")}:00`), ins.hours.map((h) => h.totalSeconds)));
}
