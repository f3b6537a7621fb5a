// Small DOM helpers. The page builds its nodes with these (never with
// innerHTML): text is always text, and no style attribute is ever parsed,
// which the Content-Security-Policy (style-src 'self') would refuse.

/** byId returns the element with this id, which index.html must have. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no #${id}`);
  return e as T;
}

type Attrs = Record<string, string | number | boolean | undefined>;

/** el creates an element with attributes (data-* included) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? "" : String(v));
  }
  e.append(...children);
  return e;
}

/** setTotal sets an element's text and, when given, its data-seconds. */
export function setTotal(e: HTMLElement, text: string, seconds: number): void {
  e.textContent = text;
  e.dataset.seconds = String(seconds);
}

/** fillTable empties a table (keeping its caption) and appends rows. */
export function fillTable(table: HTMLTableElement, head: string[], rows: HTMLTableRowElement[]): void {
  const caption = table.caption;
  table.replaceChildren();
  if (caption) table.append(caption);
  table.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  body.append(...rows);
  table.append(body);
}
