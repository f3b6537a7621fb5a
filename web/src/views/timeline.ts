// A day's timeline, as WakaTime draws it: one row per project (or file),
// each duration a bar on the day's clock, from GetDurations.
import type { CustomSeriesRenderItemAPI, CustomSeriesRenderItemParams, CustomSeriesRenderItemReturn } from "echarts";
import { Chart } from "../chart";
import { palette } from "../theme";
import { byId, el, fillTable } from "../dom";
import { clock, duration } from "../format";
import type { Duration } from "../gen/heartlog/v1/stats_pb";

let chart: Chart | undefined;

/** renderTimeline draws the durations of one day, named by slice. */
export function renderTimeline(durations: Duration[], slice: "project" | "entity", tz: string): Promise<void> {
  const name = (d: Duration) => (slice === "entity" ? d.entity : d.project);
  const rows = durations.map((d) =>
    el(
      "tr",
      { "data-start": d.start, "data-seconds": d.durationSeconds, "data-name": name(d) },
      el("td", {}, clock(d.start, tz)),
      el("td", {}, duration(d.durationSeconds)),
      el("td", {}, name(d)),
    ),
  );
  fillTable(byId<HTMLTableElement>("timeline-table"), ["Start", "Duration", slice === "entity" ? "File" : "Project"], rows);

  const names = [...new Set(durations.map(name))];
  const index = new Map(names.map((n, i) => [n, i]));
  const chartEl = byId("timeline-chart");
  // One row per name, within bounds, set from script (CSSOM).
  const height = Math.min(480, Math.max(120, 48 + names.length * 28));
  chartEl.style.height = `${height}px`;
  chart ??= new Chart(chartEl, "Timeline of the day's durations.");
  byId("timeline-empty").hidden = durations.length > 0;
  // The axis spans whole hours around the durations, ticked at a round step.
  const first = durations.length ? durations[0].start : 0;
  const last = durations.reduce((m, d) => Math.max(m, d.start + d.durationSeconds), first + 1);
  const min = Math.floor(first / 3600) * 3600;
  const max = Math.max(min + 3600, Math.ceil(last / 3600) * 3600);
  const span = (max - min) / 3600;
  const interval = span <= 2 ? 900 : span <= 6 ? 1800 : span <= 12 ? 3600 : 7200;
  return chart.draw(
    {
    grid: { left: 8, right: 24, top: 8, bottom: 28, containLabel: true },
    tooltip: { trigger: "item", renderMode: "richText", confine: true },
    xAxis: {
      type: "value",
      min,
      max,
      interval,
      axisLabel: { formatter: (v: number) => clock(v, tz), hideOverlap: true },
    },
    yAxis: {
      type: "category",
      data: names.map((n) => (n.length > 40 ? "…" + n.slice(-39) : n)),
      inverse: true,
    },
    series: [
      {
        type: "custom",
        renderItem,
        encode: { x: [1, 2], y: 0 },
        data: durations.map((d) => ({
          value: [index.get(name(d)) ?? 0, d.start, d.start + d.durationSeconds, d.durationSeconds],
          name: name(d),
          itemStyle: { color: palette[(index.get(name(d)) ?? 0) % palette.length] },
        })),
        tooltip: {
          formatter: (p: { name: string; value: number[] }) =>
            `${p.name}\n${clock(p.value[1], tz)} to ${clock(p.value[2], tz)} (${duration(p.value[3])})`,
        },
      },
    ],
    },
    height,
  );
}

function renderItem(_: CustomSeriesRenderItemParams, api: CustomSeriesRenderItemAPI): CustomSeriesRenderItemReturn {
  const row = api.value(0) as number;
  const [x0, y] = api.coord([api.value(1), row]);
  const [x1] = api.coord([api.value(2), row]);
  const h = (api.size!([0, 1]) as number[])[1] * 0.6;
  return { type: "rect", shape: { x: x0, y: y - h / 2, width: Math.max(1, x1 - x0), height: h }, style: api.style() };
}
