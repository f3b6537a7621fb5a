// boot.ts is the page's first script, a couple of KB: it sends the first
// load's calls (GetSettings, GetRange, GetHeatMap) as soon as the browser
// has it, while main.js (some 150 KB, most of it the protobuf and Connect
// runtime) is still being fetched and evaluated. It encodes the requests
// by hand (strings and messages, in field order, as protobuf-es does) and
// leaves the answers on globalThis.heartlogEarly, keyed by method and
// request bytes; api.ts's early takes an answer only for a request of the
// same bytes, and only for the page's first load.
import { loadRequests, readURL, type Selection } from "./state";

const offered = new Set(["today", "yesterday", "last_7_days", "last_30_days", "last_6_months", "last_year", "custom"]);
const sel: Selection = { range: "last_7_days", customStart: "", customEnd: "", tz: "", project: "" };
readURL(sel, location.search, (r) => offered.has(r));
const req = loadRequests(sel, "");

const text = new TextEncoder();
type Field = [number, string | Uint8Array | undefined];

/** message encodes length-delimited fields (strings, messages), skipping "" and absent ones. */
function message(fields: Field[]): Uint8Array<ArrayBuffer> {
  const parts: number[] = [];
  for (const [n, v] of fields) {
    if (v === undefined || v === "") continue;
    const b: Uint8Array = typeof v === "string" ? text.encode(v) : v;
    parts.push((n << 3) | 2);
    for (let l = b.length; ; l >>>= 7) {
      if (l < 0x80) {
        parts.push(l);
        break;
      }
      parts.push((l & 0x7f) | 0x80);
    }
    parts.push(...b);
  }
  return new Uint8Array(parts);
}

const opts = message([[1, req.options.timezone], [4, req.options.project]]);
const calls = new Map<string, Promise<Response>>();
const abort = new AbortController();
addEventListener("pagehide", () => abort.abort());

function post(path: string, body: Uint8Array<ArrayBuffer>): void {
  const key = path + " " + body.join(",");
  calls.set(
    key,
    fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/proto", "Connect-Protocol-Version": "1" },
      body,
      signal: abort.signal,
    }),
  );
}

if (req.valid) {
  post("/heartlog.v1.SettingsService/GetSettings", new Uint8Array());
  post(
    "/heartlog.v1.StatsService/GetRange",
    message([
      [1, req.range.range],
      [2, opts],
      [3, req.range.start],
      [4, req.range.end],
      ...req.range.breakdowns.map((b): Field => [5, b]),
    ]),
  );
  post("/heartlog.v1.StatsService/GetHeatMap", message([[1, req.heatmap.end], [2, opts]]));
}
(globalThis as { heartlogEarly?: Map<string, Promise<Response>> }).heartlogEarly = calls;
