// The year heat map: coding time of each of the 365 days, from one
// GetHeatMap call, drawn by hand (surface.ts): a column per week (Monday
// first), a cell per day, one fillRect each. ECharts' calendar made an
// element, a style and a state for each cell: some 130 ms of a year's
// navigation.
import { byId, el, fillTable } from "../dom";
import type { DayTotal } from "../gen/heartlog/v1/stats_pb";
import { ink, Surface } from "../surface";
import { dark } from "../theme";

// As the ECharts calendar had it: labels left and above, cells 14 px high.
const left = 32;
const top = 24;
const right = 8;
const cellH = 14;
const gap = 2;
const scale = dark ? ["#232a33", "#0e4429", "#006d32", "#26a641", "#39d353"] : ["#ebedf0", "#9be9a8", "#40c463", "#30a14e", "#216e39"];
const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const weekdays = ["Mon", "", "Wed", "", "Fri", "", ""];

interface Cell {
  col: number;
  row: number;
  day: DayTotal;
}

let surface: Surface | undefined;
let cells: Cell[] = [];
let byPos = new Map<number, Cell>();
let cellW = 1;

export function renderHeatMap(days: DayTotal[]): void {
  const rows = days.map((d) =>
    el("tr", {}, el("th", { scope: "row" }, d.date), el("td", { "data-date": d.date, "data-seconds": d.total?.totalSeconds ?? 0 }, d.total?.text ?? "")),
  );
  fillTable(byId<HTMLTableElement>("heatmap-table"), ["Date", "Time"], rows);

  // Day numbers since 1970 place each date in its week's column.
  const first = days.length ? dayNumber(days[0].date) : 0;
  const firstMonday = first - ((first + 3) % 7); // 1970-01-01 was a Thursday
  cells = days.map((day) => {
    const n = dayNumber(day.date) - firstMonday;
    return { col: Math.floor(n / 7), row: n % 7, day };
  });
  byPos = new Map(cells.map((c) => [c.col * 7 + c.row, c]));
  surface ??= new Surface(byId("heatmap-chart"), draw, hover);
  draw();
}

function draw(): void {
  if (!surface) return;
  const g = surface.context();
  const cols = cells.length ? cells[cells.length - 1].col + 1 : 53;
  cellW = Math.max(1, (surface.size.width - left - right) / cols);
  // The scale's top, for display only: the busiest day.
  const most = cells.reduce((m, c) => Math.max(m, c.day.total?.totalSeconds ?? 0), 0);
  for (const c of cells) {
    const s = c.day.total?.totalSeconds ?? 0;
    g.fillStyle = s <= 0 ? scale[0] : scale[Math.min(4, 1 + Math.floor((s / most) * 4))];
    g.fillRect(left + c.col * cellW + gap / 2, top + c.row * cellH + gap / 2, cellW - gap, cellH - gap);
  }
  g.fillStyle = ink;
  g.textBaseline = "middle";
  weekdays.forEach((w, row) => g.fillText(w, 0, top + row * cellH + cellH / 2));
  // A month's name above the week of its first day.
  g.textBaseline = "alphabetic";
  for (const c of cells) {
    const [, m, d] = c.day.date.split("-");
    if (d === "01" || c === cells[0]) g.fillText(months[Number(m) - 1], left + c.col * cellW, top - 8);
  }
}

// hover names the day under the pointer with the API's text.
function hover(x: number, y: number) {
  const col = Math.floor((x - left) / cellW);
  const row = Math.floor((y - top) / cellH);
  const c = col >= 0 && row >= 0 && row < 7 ? byPos.get(col * 7 + row) : undefined;
  if (!c) return undefined;
  return { text: `${c.day.date}: ${c.day.total?.text || "0 secs"}`, x: left + (col + 1) * cellW, y: top + row * cellH - 4 };
}

function dayNumber(date: string): number {
  return Math.round(Date.parse(date + "T00:00:00Z") / 86_400_000);
}
