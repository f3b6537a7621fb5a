// Settings: the user's time zone and keystroke timeout, read and stored
// through SettingsService.
import { errorText, settings } from "../api";
import { byId, el } from "../dom";
import { timeZones } from "../format";
import type { Settings } from "../gen/heartlog/v1/settings_pb";

const form = () => byId<HTMLFormElement>("settings");
const tzInput = () => byId<HTMLInputElement>("settings-timezone");
const timeoutInput = () => byId<HTMLInputElement>("settings-timeout");
const status = () => byId("settings-status");

/** showSettings fills the form, or says why there are none to show. */
export function showSettings(s: Settings | undefined, unavailable?: string): void {
  // The suggestions (every IANA zone, some 400) are made when the field
  // is first used, not with the page: they are most of its elements.
  tzInput().addEventListener("focus", fillSuggestions, { once: true });
  const disabled = s === undefined;
  for (const c of form().querySelectorAll<HTMLInputElement | HTMLButtonElement>("input, button")) c.disabled = disabled;
  if (s) {
    tzInput().value = s.timezone;
    timeoutInput().value = String(s.timeoutMinutes);
    status().textContent = "";
  } else {
    status().textContent = `Settings are unavailable: ${unavailable ?? "unknown error"}`;
  }
}

function fillSuggestions(): void {
  const list = byId("timezones");
  if (!list.hasChildNodes()) list.append(...timeZones().map((tz) => el("option", { value: tz })));
}

/**
 * bindSettings saves the form on submit (Enter included); saved is called
 * with the settings as stored, so that the views can re-read with them.
 * Refusals (an unknown time zone, a timeout out of range) show the API's
 * text; failed is called with any error, for an expired session.
 */
export function bindSettings(saved: (s: Settings) => void, failed: (e: unknown) => boolean): void {
  form().addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const timeout = Number(timeoutInput().value);
    status().textContent = "Saving…";
    try {
      const res = await settings.updateSettings({ timezone: tzInput().value.trim(), timeoutMinutes: timeout });
      status().textContent = "Saved.";
      if (res.settings) {
        showSettings(res.settings);
        status().textContent = "Saved.";
        saved(res.settings);
      }
    } catch (e) {
      if (!failed(e)) status().textContent = errorText(e);
    }
  });
}
