// Breakdowns: the range's time by project, language, editor, ... with the
// API's text and percent, in the API's order. A project's name is a
// button that filters every view by it.
import { byId, el } from "../dom";
import type { Breakdown, Item } from "../gen/heartlog/v1/stats_pb";

export const kinds = [
  "projects",
  "entities",
  "languages",
  "editors",
  "operating_systems",
  "machines",
  "categories",
  "branches",
] as const;
type Kind = (typeof kinds)[number];

const field: Record<Kind, keyof Breakdown> = {
  projects: "projects",
  entities: "entities",
  languages: "languages",
  editors: "editors",
  operating_systems: "operatingSystems",
  machines: "machines",
  categories: "categories",
  branches: "branches",
};

/** renderBreakdowns fills every list; entities only with a project selected. */
export function renderBreakdowns(b: Breakdown | undefined, project: string, onProject: (name: string) => void): void {
  for (const kind of kinds) {
    const section = byId(`breakdown-${kind}`);
    const list = section.querySelector("ol")!;
    if (kind === "entities") section.hidden = !project;
    const items = (b?.[field[kind]] as Item[] | undefined) ?? [];
    if (kind === "entities" && !project) {
      list.replaceChildren();
      continue;
    }
    list.replaceChildren(...items.map((it) => item(kind, it, onProject)));
    if (items.length === 0) list.append(el("li", { class: "empty" }, "No time in this range."));
  }
}

function item(kind: Kind, it: Item, onProject: (name: string) => void): HTMLLIElement {
  const name =
    kind === "projects"
      ? el("button", { type: "button", class: "link", title: `Show only ${it.name}` }, it.name)
      : el("span", { class: "name" }, it.name);
  if (name instanceof HTMLButtonElement) name.addEventListener("click", () => onProject(it.name));
  const bar = el("span", { class: "bar" });
  // CSSOM, not a style attribute: allowed under style-src 'self'.
  bar.style.width = `${Math.min(100, Math.max(0, it.percent))}%`;
  return el(
    "li",
    { "data-name": it.name, "data-seconds": it.totalSeconds, "data-percent": it.percent },
    name,
    el("span", { class: "track" }, bar),
    el("span", { class: "time" }, it.text),
    el("span", { class: "percent" }, `${it.percent.toFixed(2)} %`),
  );
}
