// Daily bars: coding time per day of the range, stacked by project, from
// GetRange's summaries (GetSummaries' days, projects only); the table beside the chart lists the same numbers.
import { Chart } from "../chart";
import { byId, el, fillTable } from "../dom";
import { hours } from "../format";
import type { DaySummary, Item } from "../gen/heartlog/v1/stats_pb";

let chart: Chart | undefined;

/** renderDaily draws the days; order is the range's project order. */
export function renderDaily(days: DaySummary[], order: Item[]): Promise<void> {
  const names = projectNames(days, order);
  const rows = days.map((d) =>
    el(
      "tr",
      { "data-date": d.date },
      el("th", { scope: "row" }, d.date),
      el("td", {}, d.grandTotal?.text ?? ""),
      ...(d.breakdown?.projects ?? [])
        .filter((p) => p.totalSeconds > 0)
        .map((p) => el("td", { "data-project": p.name, "data-seconds": p.totalSeconds }, `${p.name}: ${p.text}`)),
    ),
  );
  fillTable(byId<HTMLTableElement>("daily-table"), ["Date", "Total", "By project"], rows);

  chart ??= new Chart(byId("daily-chart"), "Coding time per day, stacked by project.");
  const perDay = days.map((d) => new Map((d.breakdown?.projects ?? []).map((p) => [p.name, p.totalSeconds])));
  return chart.draw({
    grid: { left: 48, right: 16, top: 40, bottom: 32 },
    legend: { type: "scroll", top: 0 },
    tooltip: { trigger: "item", renderMode: "richText", confine: true },
    xAxis: { type: "category", data: days.map((d) => d.date.slice(5)) },
    yAxis: { type: "value", axisLabel: { formatter: hours } },
    series: names.map((name) => ({
      type: "bar",
      name,
      stack: "time",
      barMaxWidth: 40,
      // A year is 365 bars a project: drawn as one path per project
      // rather than an element per bar (ECharts' large mode).
      large: true,
      largeThreshold: 100,
      data: perDay.map((m) => Number(((m.get(name) ?? 0) / 3600).toFixed(3))),
      tooltip: { valueFormatter: hours },
    })),
  });
}

// projectNames: the range's order first, then any other name the days carry.
function projectNames(days: DaySummary[], order: Item[]): string[] {
  const names = new Set(order.map((p) => p.name));
  for (const d of days) for (const p of d.breakdown?.projects ?? []) names.add(p.name);
  return [...names];
}
