// Chart is the handle the views draw with. ECharts itself (charts.ts) is
// fetched as a separate chunk, started at once but not waited for, so the
// page's API calls go out while the browser parses it.
import type { Option } from "./charts";

export type { Option };

const lib = import("./charts");

export class Chart {
  private readonly dom: HTMLElement;
  private readonly label: string;
  private chart?: Promise<import("./charts").Chart>;

  constructor(dom: HTMLElement, label: string) {
    this.dom = dom;
    this.label = label;
    // Hidden from screen readers: each chart's table says the same in full.
    dom.setAttribute("aria-hidden", "true");
  }

  /** draw renders option and resolves once ECharts has drawn it. */
  async draw(option: Option): Promise<void> {
    this.chart ??= lib.then((m) => new m.Chart(this.dom, this.label));
    return (await this.chart).draw(option);
  }
}
