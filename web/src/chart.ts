// Chart is the handle the views draw with. ECharts itself (charts.ts) is
// fetched as a separate chunk, started at once but not waited for, so the
// page's API calls go out while the browser parses it.
//
// Each chart is drawn at its box's size as the page last measured it:
// measureCharts reads every box in one go when the dashboard is shown,
// and a ResizeObserver follows later changes (a resized window). ECharts
// never reads the DOM's size itself, which would lay the page out again
// after each view filled its tables.
import type { Option, Size } from "./charts";

export type { Option, Size };

const lib = import("./charts");

const sizes = new Map<Element, Size>();
const charts = new Map<Element, { resize(size: Size): void }>();

const observer = new ResizeObserver((entries) => {
  for (const e of entries) {
    const box = e.contentBoxSize[0];
    const size = { width: Math.round(box.inlineSize), height: Math.round(box.blockSize) };
    if (size.width === 0 || size.height === 0) continue; // hidden: keep the last size
    sizes.set(e.target, size);
    charts.get(e.target)?.resize(size);
  }
});

/**
 * measureCharts reads the size of every chart's box (elements of class
 * "chart"), all at once: one layout, before the views fill the page.
 */
export function measureCharts(): void {
  for (const e of document.querySelectorAll<HTMLElement>(".chart")) {
    const size = { width: e.clientWidth, height: e.clientHeight };
    if (size.width > 0 && size.height > 0) sizes.set(e, size);
  }
}

/**
 * boxSize is the size of a chart's box as last measured (measureCharts,
 * or the ResizeObserver once it has reported), read from the DOM only if
 * it never was. onResize, when given, is called on each later change.
 */
export function boxSize(dom: HTMLElement, onResize?: (size: Size) => void): Size {
  if (onResize && !charts.has(dom)) {
    charts.set(dom, { resize: onResize });
    observer.observe(dom);
  }
  let size = sizes.get(dom);
  if (!size) {
    measureCharts();
    size = sizes.get(dom) ?? { width: dom.clientWidth, height: dom.clientHeight };
    sizes.set(dom, size);
  }
  return size;
}

export class Chart {
  private readonly dom: HTMLElement;
  private readonly label: string;
  private chart?: Promise<import("./charts").Chart>;
  private drawn = false;

  constructor(dom: HTMLElement, label: string) {
    this.dom = dom;
    this.label = label;
    // Hidden from screen readers: each chart's table says the same in full.
    dom.setAttribute("aria-hidden", "true");
    charts.set(dom, this);
    observer.observe(dom);
  }

  /**
   * draw renders option and resolves once ECharts has drawn it. height,
   * when given, is the box's height as the caller just set it.
   */
  async draw(option: Option, height?: number): Promise<void> {
    this.chart ??= lib.then((m) => new m.Chart(this.dom, this.label));
    const chart = await this.chart;
    let size = boxSize(this.dom);
    if (height !== undefined) size = { width: size.width, height };
    sizes.set(this.dom, size);
    this.drawn = true;
    return chart.draw(option, size);
  }

  /** resize follows a change of the box, once the chart has been drawn. */
  resize(size: Size): void {
    if (this.drawn) void this.chart?.then((c) => c.resize(size));
  }
}
