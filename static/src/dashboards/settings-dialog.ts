// A dashboard's settings (owners and editors): title, description, parameters and refresh schedule,
// saved as a new version. Resolves with the saved dashboard, or null when closed without saving.

import { dashboardsApi, type Dashboard } from "../api/dashboards";
import { ApiError } from "../api/errors";
import { ParameterRows } from "../components/parameter-rows";
import { h } from "../dom";
import { t, type MessageKey } from "../i18n";

// The refresh schedules offered, in seconds (0: none), from 15 minutes to daily.
export const REFRESH_PRESETS: [number, MessageKey][] = [
  [0, "refresh.none"],
  [900, "refresh.15m"],
  [1800, "refresh.30m"],
  [3600, "refresh.1h"],
  [10800, "refresh.3h"],
  [21600, "refresh.6h"],
  [43200, "refresh.12h"],
  [86400, "refresh.1d"],
];

// How often, in words: a preset's name, or "every n minutes" for a schedule set elsewhere (an import).
export function refreshText(seconds: number): string {
  const preset = REFRESH_PRESETS.find(([s]) => s === seconds);
  return preset ? t(preset[1]) : t("refresh.minutes", { n: Math.round(seconds / 60) });
}

export function openSettings(dashboard: Dashboard): Promise<Dashboard | null> {
  return new Promise((resolve) => {
    let saved: Dashboard | null = null;
    const doc = dashboard.document;
    const every = doc.refresh?.every_seconds ?? 0;
    const title = h("input", { name: "title", value: doc.title, maxlength: 200, required: true });
    const description = h("textarea", { name: "description", maxlength: 5000, rows: 3 }, doc.description ?? "");
    const known = REFRESH_PRESETS.some(([s]) => s === every);
    const refresh = h(
      "select",
      { name: "refresh" },
      ...(known ? [] : [h("option", { value: String(every), selected: true }, refreshText(every))]),
      ...REFRESH_PRESETS.map(([seconds, key]) => h("option", { value: String(seconds), selected: seconds === every }, t(key))),
    );
    const parameters = new ParameterRows(doc.parameters ?? [], t("settings.noParameters"));
    const error = h("p", { class: "form-error", role: "alert" });
    const cancel = h("button", { type: "button", class: "ghost" }, t("common.cancel"));
    const save = h("button", { type: "submit", class: "primary" }, t("common.save"));
    const form = h(
      "form",
      { class: "stack" },
      h("label", {}, t("settings.title"), title),
      h("label", {}, t("settings.description"), description),
      h("label", {}, t("settings.refresh"), refresh, h("span", { class: "muted small field-hint" }, t("settings.refreshHint"))),
      h("fieldset", { class: "settings-params" }, h("legend", {}, t("params.label")), parameters.element),
      error,
      h("div", { class: "dialog-actions" }, h("span", { class: "spacer" }), cancel, save),
    );
    const label = t("settings.heading");
    const dialog = h("dialog", { class: "dash-dialog settings-dialog", "aria-label": label }, h("h2", {}, label), form);
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = parameters.read();
      if (!values) return;
      const seconds = Number(refresh.value);
      const { description: _, ...rest } = doc;
      const changed = { ...rest, title: title.value.trim(), ...(description.value.trim() ? { description: description.value.trim() } : {}), parameters: values, refresh: seconds ? { every_seconds: seconds } : null };
      save.disabled = true;
      error.textContent = "";
      dashboardsApi
        .save(dashboard.id, dashboard.version, changed)
        .then((result) => {
          saved = result;
          dialog.close();
        })
        .catch((problem: unknown) => {
          const stale = problem instanceof ApiError && problem.status === 409;
          if (stale) error.textContent = t("settings.stale");
          else if (!parameters.refused(problem)) error.textContent = (problem as Error).message;
        })
        .finally(() => (save.disabled = false));
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(saved);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
