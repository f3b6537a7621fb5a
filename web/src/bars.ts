// Bars is a bar chart drawn by hand (surface.ts): one bar per category,
// stacked by series, a value axis in hours and a legend on top. A year of
// days by project is some 2,000 fillRects, which take a millisecond or
// two; ECharts spent some 150 ms of a year's navigation building them.
import { hours } from "./format";
import { ink, Surface, type Tip } from "./surface";
import { dark, palette } from "./theme";

/** Series is one stack level: a name and a value (in hours) per category. */
export interface Series {
  name: string;
  values: number[];
}

export interface BarsData {
  /** Axis labels, one per category. */
  labels: string[];
  /** Tooltip titles, one per category (the labels if absent). */
  titles?: string[];
  series: Series[];
  /** Show a legend of the series' names. */
  legend?: boolean;
}

const grid = dark ? "#2c323d" : "#dde1e8";
const right = 16;
const bottom = 28;
const left = 48;

export class Bars {
  private readonly surface: Surface;
  private readonly maxBar: number;
  private data: BarsData = { labels: [], series: [] };
  private band = 1;

  constructor(box: HTMLElement, maxBar: number) {
    this.maxBar = maxBar;
    this.surface = new Surface(box, () => this.draw(), (x, y) => this.hover(x, y));
  }

  /** render draws data; the canvas holds it when render returns. */
  render(data: BarsData): void {
    this.data = data;
    this.draw();
  }

  private top(): number {
    return this.data.legend ? 40 : 16;
  }

  private draw(): void {
    const { labels, series } = this.data;
    const g = this.surface.context();
    const { width, height } = this.surface.size;
    const top = this.top();
    const plotW = Math.max(1, width - left - right);
    const plotH = Math.max(1, height - top - bottom);
    const n = Math.max(1, labels.length);
    this.band = plotW / n;
    const totals = labels.map((_, i) => series.reduce((s, x) => s + (x.values[i] ?? 0), 0));
    const [step, max] = axis(Math.max(0, ...totals));
    const y = (v: number) => top + plotH - (v / max) * plotH;

    // Value axis: a line and a label per step.
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let v = 0; v <= max + step / 2; v += step) {
      g.fillStyle = grid;
      g.fillRect(left, Math.round(y(v)), plotW, 1);
      g.fillStyle = ink;
      g.fillText(hours(v), left - 6, y(v));
    }
    // The bars, a series (one fill color) at a time over the stack so far.
    const barW = Math.max(1, Math.min(this.maxBar, this.band * 0.7));
    const base = new Array<number>(n).fill(0);
    series.forEach((s, k) => {
      g.fillStyle = palette[k % palette.length];
      for (let i = 0; i < n; i++) {
        const v = s.values[i] ?? 0;
        if (v <= 0) continue;
        const y0 = y(base[i]);
        base[i] += v;
        g.fillRect(left + i * this.band + (this.band - barW) / 2, y(base[i]), barW, y0 - y(base[i]));
      }
    });
    // Category labels, every k-th where they would overlap.
    g.textAlign = "center";
    g.textBaseline = "top";
    g.fillStyle = ink;
    const every = Math.max(1, Math.ceil((g.measureText(labels[0] ?? "").width + 8) / this.band));
    for (let i = 0; i < labels.length; i += every) g.fillText(labels[i], left + (i + 0.5) * this.band, top + plotH + 6);
    if (this.data.legend) this.drawLegend(g, width);
  }

  // drawLegend writes the series' names in a row, as many as fit.
  private drawLegend(g: CanvasRenderingContext2D, width: number): void {
    g.textAlign = "left";
    g.textBaseline = "middle";
    let x = left;
    for (const [k, s] of this.data.series.entries()) {
      const w = 14 + g.measureText(s.name).width + 12;
      if (x + w > width - right) break;
      g.fillStyle = palette[k % palette.length];
      g.fillRect(x, 6, 10, 10);
      g.fillStyle = ink;
      g.fillText(s.name, x + 14, 11);
      x += w;
    }
  }

  // hover lists the category under the pointer: each series' hours.
  private hover(x: number, y: number): Tip | undefined {
    const i = Math.floor((x - left) / this.band);
    if (i < 0 || i >= this.data.labels.length || y < this.top() || y > this.surface.size.height - bottom) return undefined;
    const lines = this.data.series.filter((s) => (s.values[i] ?? 0) > 0).map((s) => `${s.name}: ${hours(s.values[i])}`);
    const title = (this.data.titles ?? this.data.labels)[i];
    const body = this.data.series.length > 1 ? lines : lines.map((l) => l.slice(l.indexOf(": ") + 2));
    return { text: [title, ...(body.length ? body : ["0 h"])].join("\n"), x: left + (i + 1) * this.band, y };
  }
}

// axis picks a round step (1, 2 or 5 × 10^k hours) for about 4 lines and
// the axis's top, a whole number of steps at or over max.
function axis(max: number): [number, number] {
  if (max <= 0) return [1, 1];
  const raw = max / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  return [step, Math.ceil(max / step - 1e-9) * step];
}
