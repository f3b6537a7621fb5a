// The year heat map: coding time of each of the 365 days, from one
// GetHeatMap call, on an ECharts calendar.
import { Chart } from "../chart";
import { dark } from "../theme";
import { byId, el, fillTable } from "../dom";
import { hours } from "../format";
import type { DayTotal } from "../gen/heartlog/v1/stats_pb";

let chart: Chart | undefined;

export function renderHeatMap(days: DayTotal[]): Promise<void> {
  const rows = days.map((d) =>
    el("tr", {}, el("th", { scope: "row" }, d.date), el("td", { "data-date": d.date, "data-seconds": d.total?.totalSeconds ?? 0 }, d.total?.text ?? "")),
  );
  fillTable(byId<HTMLTableElement>("heatmap-table"), ["Date", "Time"], rows);

  chart ??= new Chart(byId("heatmap-chart"), "Coding time per day over the last 365 days.");
  const data = days.map((d) => [d.date, Number(((d.total?.totalSeconds ?? 0) / 3600).toFixed(2))]);
  // The color scale's top, for display only.
  const top = Math.max(1, ...data.map((d) => d[1] as number));
  return chart.draw({
    tooltip: { trigger: "item", renderMode: "richText", confine: true, valueFormatter: (v: number) => hours(v) },
    visualMap: {
      show: false,
      min: 0,
      max: top,
      inRange: { color: dark ? ["#232a33", "#0e4429", "#006d32", "#26a641", "#39d353"] : ["#ebedf0", "#9be9a8", "#40c463", "#30a14e", "#216e39"] },
    },
    calendar: {
      range: days.length ? [days[0].date, days[days.length - 1].date] : undefined,
      cellSize: ["auto", 14],
      left: 32,
      right: 8,
      top: 24,
      bottom: 4,
      itemStyle: { borderWidth: 2, borderColor: "transparent" },
      splitLine: { show: false },
      yearLabel: { show: false },
      dayLabel: { firstDay: 1, nameMap: "en" },
    },
    // No hover emphasis (the tooltip says the day): 365 cells' hover
    // states are most of the chart's setup.
    series: [{ type: "heatmap", coordinateSystem: "calendar", data, emphasis: { disabled: true } }],
  });
}
