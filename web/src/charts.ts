// ECharts, tree-shaken: only the chart types and components the page
// draws with it (the timeline's custom series; the heat map and the bar
// charts are drawn by hand, surface.ts), with the canvas renderer (no SVG/DOM styles the CSP would
// refuse). chart.ts loads this module, and ECharts with it, as a chunk of
// its own, so that the page's calls go out before ECharts is parsed.
// Tooltips render as rich text on the canvas, because ECharts' HTML
// tooltips carry style attributes, which style-src 'self' blocks.
import { CustomChart } from "echarts/charts";
import {
  AriaComponent,
  GridComponent,
  TooltipComponent,
} from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { dark, palette } from "./theme";

echarts.use([
  CustomChart,
  AriaComponent,
  GridComponent,
  TooltipComponent,
  CanvasRenderer,
]);

export type Option = echarts.EChartsCoreOption;

/** Size is a chart's box in CSS pixels. */
export interface Size {
  width: number;
  height: number;
}

/** Chart is one ECharts instance on a container, created on first draw. */
export class Chart {
  private chart?: echarts.ECharts;
  private readonly dom: HTMLElement;
  private readonly label: string;

  constructor(dom: HTMLElement, label: string) {
    this.dom = dom;
    this.label = label;
  }

  /**
   * draw replaces the chart's option at size and resolves once ECharts has
   * rendered it (its "finished" event), so that the page says "ready" only
   * for what is really on screen. The size is the caller's, never read
   * here: ECharts would read it from the DOM, and each such read lays out
   * the page anew while the views fill it.
   */
  draw(option: Option, size: Size): Promise<void> {
    if (!this.chart) {
      this.chart = echarts.init(this.dom, dark ? "dark" : undefined, { renderer: "canvas", ...size });
    } else if (this.chart.getWidth() !== size.width || this.chart.getHeight() !== size.height) {
      this.chart.resize({ ...size, silent: true });
    }
    const chart = this.chart;
    return new Promise((resolve) => {
      const done = () => {
        chart.off("finished", done);
        resolve();
      };
      chart.on("finished", done);
      chart.setOption(
        {
          animation: false,
          backgroundColor: "transparent",
          color: palette,
          aria: { enabled: true, label: { description: this.label } },
          tooltip: { renderMode: "richText", confine: true },
          ...option,
        },
        { notMerge: true },
      );
    });
  }

  /** resize redraws the chart at a new size (its box changed). */
  resize(size: Size): void {
    if (this.chart && (this.chart.getWidth() !== size.width || this.chart.getHeight() !== size.height)) {
      this.chart.resize(size);
    }
  }
}
