// Surface is a chart drawn by hand on one canvas, with a text tooltip
// that follows the pointer: the heat map and the bar charts. Each is a few
// hundred fillRects, which ECharts turned into as many elements, styles
// and states to build (most of a year's drawing time). The canvas is
// hidden from screen readers (each chart has a table that says the same)
// and takes no keyboard focus.
import { boxSize, type Size } from "./chart";
import { el } from "./dom";

/** Tip is what the tooltip says for a pointer position, and where. */
export interface Tip {
  text: string;
  x: number;
  y: number;
}

export const ink = matchMedia("(prefers-color-scheme: dark)").matches ? "#9aa3b5" : "#5b6475";
export const font = "11px system-ui, sans-serif";

export class Surface {
  private readonly canvas: HTMLCanvasElement;
  private readonly tip: HTMLElement;
  /** size is the box's size in CSS pixels as last drawn. */
  size: Size;

  /** The box's size is read once (chart.ts); redraw runs when it changes. */
  constructor(box: HTMLElement, redraw: () => void, hover: (x: number, y: number) => Tip | undefined) {
    box.setAttribute("aria-hidden", "true");
    box.classList.add("surface");
    this.canvas = el("canvas");
    this.tip = el("div", { class: "tip", hidden: true });
    box.append(this.canvas, this.tip);
    this.size = boxSize(box, (s) => {
      this.size = s;
      redraw();
    });
    this.canvas.addEventListener("mousemove", (ev) => this.show(hover(ev.offsetX, ev.offsetY)));
    this.canvas.addEventListener("mouseleave", () => this.show(undefined));
  }

  /** context clears the canvas at the box's size and returns it in CSS pixels. */
  context(height?: number): CanvasRenderingContext2D {
    if (height !== undefined) this.size = { width: this.size.width, height };
    const { width, height: h } = this.size;
    const ratio = devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(h * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${h}px`;
    const g = this.canvas.getContext("2d")!;
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, h);
    g.font = font;
    return g;
  }

  private show(t: Tip | undefined): void {
    this.tip.hidden = !t;
    if (!t) return;
    this.tip.textContent = t.text;
    // Beside the point, kept inside the box.
    const x = Math.max(0, Math.min(t.x + 8, this.size.width - this.tip.offsetWidth));
    const y = Math.max(0, Math.min(t.y, this.size.height - this.tip.offsetHeight));
    this.tip.style.transform = `translate(${x}px, ${y}px)`;
  }
}
