// Insights: coding time by weekday and by hour of the day over the range,
// from GetRange's insights (as GetInsights gives them).
import { Chart } from "../chart";
import { byId, el, fillTable } from "../dom";
import { hours } from "../format";
import type { GetInsightsResponse } from "../gen/heartlog/v1/stats_pb";

let weekdays: Chart | undefined;
let hourly: Chart | undefined;

export function renderInsights(ins: GetInsightsResponse): Promise<void> {
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

  weekdays ??= new Chart(byId("weekdays-chart"), "Coding time by weekday.");
  hourly ??= new Chart(byId("hours-chart"), "Coding time by hour of the day.");
  const bars = (labels: string[], seconds: number[]) => ({
    grid: { left: 48, right: 8, top: 16, bottom: 28 },
    tooltip: { trigger: "item", renderMode: "richText", confine: true, valueFormatter: (v: number) => hours(v) },
    xAxis: { type: "category", data: labels },
    yAxis: { type: "value", axisLabel: { formatter: hours } },
    series: [{ type: "bar", barMaxWidth: 32, data: seconds.map((s) => Number((s / 3600).toFixed(3))) }],
  });
  return Promise.all([
    weekdays.draw(bars(ins.weekdays.map((w) => w.name.slice(0, 3)), ins.weekdays.map((w) => w.total?.totalSeconds ?? 0))),
    hourly.draw(bars(ins.hours.map((_, i) => String(i)), ins.hours.map((h) => h.totalSeconds))),
  ]).then(() => undefined);
}
