// Formatting for display only. Every total the page shows is the text the
// API computed; these helpers only label chart axes and local dates.

/** hours labels an axis value given in hours: "1.5 h". */
export function hours(h: number): string {
  return `${Number(h.toFixed(1))} h`;
}

/** duration labels a number of seconds for a tooltip: "1 h 5 m", "12 m". */
export function duration(seconds: number): string {
  const m = Math.round(seconds / 60);
  if (m < 60) return `${m} m`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

/** today is the local date (YYYY-MM-DD) now in an IANA time zone ("" is the browser's). */
export function today(tz: string): string {
  const opts: Intl.DateTimeFormatOptions = { year: "numeric", month: "2-digit", day: "2-digit" };
  if (tz) opts.timeZone = tz;
  // en-CA writes dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat("en-CA", opts).format(new Date());
}

/** addDays moves a YYYY-MM-DD date by n days. */
export function addDays(date: string, n: number): string {
  const d = new Date(date + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/** clock formats Unix seconds as the time of day in a zone: "14:05". */
export function clock(unix: number, tz: string): string {
  const opts: Intl.DateTimeFormatOptions = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (tz) opts.timeZone = tz;
  return new Intl.DateTimeFormat("en-GB", opts).format(new Date(unix * 1000));
}

/** timeZones lists the IANA names the browser knows, with extra ones added. */
export function timeZones(...extra: string[]): string[] {
  const known = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return [...new Set([...known, "UTC", ...extra.filter(Boolean)])].sort();
}
