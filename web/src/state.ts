// What the page shows: the selection (range, time zone, project) the
// views read, and how it maps to the API's requests.
import type { GetStatsResponse, ReadOptions } from "./gen/heartlog/v1/stats_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ReadOptionsSchema } from "./gen/heartlog/v1/stats_pb";
import { addDays, today } from "./format";

/** RangeStats is what the totals and breakdowns show. */
export type RangeStats = GetStatsResponse;

/** The ranges the server names (GetStats, GetInsights and GetSummaries resolve them). */
export const namedRanges: ReadonlySet<string> = new Set(["last_7_days", "last_30_days", "last_6_months", "last_year"]);

export interface Selection {
  /** A value of select#range. */
  range: string;
  /** Local dates of a custom range (YYYY-MM-DD). */
  customStart: string;
  customEnd: string;
  /** The view's IANA time zone; "" is the user's setting. */
  tz: string;
  /** The project every view is filtered by; "" for all. */
  project: string;
}

/** options are the ReadOptions of every request for a selection. */
export function options(sel: Selection): MessageInitShape<typeof ReadOptionsSchema> & Partial<ReadOptions> {
  return { timezone: sel.tz, project: sel.project };
}

/**
 * dates are the local first and last day of a range the page resolves
 * itself (today, yesterday, custom); null for the named ranges, whose dates
 * the server gives back with their stats.
 */
export function dates(sel: Selection, userTz: string): { start: string; end: string } | null {
  const now = today(sel.tz || userTz);
  switch (sel.range) {
    case "today":
      return { start: now, end: now };
    case "yesterday": {
      const y = addDays(now, -1);
      return { start: y, end: y };
    }
    case "custom":
      return { start: sel.customStart, end: sel.customEnd };
  }
  return null;
}

/** Requests are the range and heat map requests of a selection's load. */
export interface Requests {
  /** False for a custom range that ends before it starts: nothing to ask. */
  valid: boolean;
  options: ReturnType<typeof options>;
  range: { range?: string; start?: string; end?: string; options: ReturnType<typeof options>; breakdowns: string[] };
  heatmap: { end: string; options: ReturnType<typeof options> };
  /** The range's last day, if the page knows it without asking ("" if not). */
  end: string;
}

/**
 * loadRequests are the GetRange and GetHeatMap requests of a load of sel
 * for a user in userTz ("" while unknown). Named ranges are resolved by
 * the server (stats.ParseRange), so that every call starts at once. The
 * bars need each day's projects alone: a year's days in full would be most
 * of the page's download and decoding. boot.ts sends the page's first
 * load's before the app is loaded, main.ts every load's.
 */
export function loadRequests(sel: Selection, userTz: string): Requests {
  const opts = options(sel);
  const span = dates(sel, userTz);
  const valid = !span || (span.start !== "" && span.end !== "" && span.start <= span.end);
  const range = span
    ? { start: span.start, end: span.end, options: opts, breakdowns: ["projects"] }
    : { range: sel.range, options: opts, breakdowns: ["projects"] };
  const tz = sel.tz || userTz;
  const end = span?.end ?? (tz ? today(tz) : "");
  return { valid, options: opts, range, heatmap: { end, options: opts }, end };
}

/**
 * readURL takes the range from the page's query, so that a view can be
 * linked and bookmarked: ?range=last_year, or ?range=custom&start=…&end=….
 * A range the picker does not offer (isOffered) is ignored.
 */
export function readURL(sel: Selection, search: string, isOffered: (range: string) => boolean): void {
  const q = new URLSearchParams(search);
  const range = q.get("range") ?? "";
  if (!isOffered(range)) return;
  sel.range = range;
  if (range === "custom") {
    sel.customStart = q.get("start") ?? "";
    sel.customEnd = q.get("end") ?? "";
  }
}

/** urlQuery is the query readURL reads the selection's range from. */
export function urlQuery(sel: Selection): string {
  const q = new URLSearchParams({ range: sel.range });
  if (sel.range === "custom") {
    q.set("start", sel.customStart);
    q.set("end", sel.customEnd);
  }
  return "?" + q.toString();
}
