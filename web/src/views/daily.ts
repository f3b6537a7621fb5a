// Daily bars: coding time per day of the range, stacked by project, from
// GetRange's summaries (GetSummaries' days, projects only), drawn by hand
// (bars.ts); the table beside the chart lists the same numbers.
import { Bars } from "../bars";
import { byId, el, fillTable } from "../dom";
import type { DaySummary, Item } from "../gen/heartlog/v1/stats_pb";

let chart: Bars | undefined;

/** renderDaily draws the days; order is the range's project order. */
export function renderDaily(days: DaySummary[], order: Item[]): void {
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

  chart ??= new Bars(byId("daily-chart"), 40);
  const perDay = days.map((d) => new Map((d.breakdown?.projects ?? []).map((p) => [p.name, p.totalSeconds])));
  chart.render({
    labels: days.map((d) => d.date.slice(5)),
    titles: days.map((d) => d.date),
    legend: true,
    series: names.map((name) => ({ name, values: perDay.map((m) => (m.get(name) ?? 0) / 3600) })),
  });
}

// projectNames: the range's order first, then any other name the days carry.
function projectNames(days: DaySummary[], order: Item[]): string[] {
  const names = new Set(order.map((p) => p.name));
  for (const d of days) for (const p of d.breakdown?.projects ?? []) names.add(p.name);
  return [...names];
}
