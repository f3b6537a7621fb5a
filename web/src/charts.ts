// ECharts, tree-shaken: only the chart types and components the page
// draws, with the canvas renderer (no SVG/DOM styles the CSP would refuse).
// Tooltips render as rich text on the canvas, because ECharts' HTML
// tooltips carry style attributes, which style-src 'self' blocks.
import { BarChart, CustomChart, HeatmapChart } from "echarts/charts";
import {
  AriaComponent,
  CalendarComponent,
  GridComponent,
  LegendComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([
  BarChart,
  CustomChart,
  HeatmapChart,
  AriaComponent,
  CalendarComponent,
  GridComponent,
  LegendComponent,
  TooltipComponent,
  VisualMapComponent,
  CanvasRenderer,
]);

export type Option = echarts.EChartsCoreOption;

export const dark = matchMedia("(prefers-color-scheme: dark)").matches;

/** palette is the series colors, also used for the breakdown bars. */
export const palette = [
  "#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de",
  "#3ba272", "#fc8452", "#9a60b4", "#ea7ccc", "#8d98b3",
];

/** Chart is one ECharts instance on a container, created on first draw. */
export class Chart {
  private chart?: echarts.ECharts;
  private readonly dom: HTMLElement;
  private readonly label: string;

  constructor(dom: HTMLElement, label: string) {
    this.dom = dom;
    this.label = label;
    // Hidden from screen readers: each chart's table says the same in full.
    dom.setAttribute("aria-hidden", "true");
  }

  /**
   * draw replaces the chart's option and resolves once ECharts has
   * rendered it (its "finished" event), so that the page says "ready" only
   * for what is really on screen.
   */
  draw(option: Option): Promise<void> {
    if (!this.chart) {
      this.chart = echarts.init(this.dom, dark ? "dark" : undefined, { renderer: "canvas" });
      new ResizeObserver(() => this.chart?.resize()).observe(this.dom);
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
}
