// A card's version history: its versions a page at a time (newest first, who saved each and when), a
// version's code as a line diff against the current version, and restoring one as a new version.

import "../pages/manage.css";
import { cardsApi, type Card, type CardVersion, type CardVersionSummary } from "../api/cards";
import { banner } from "../components/banner";
import { closeButton, confirmDialog, openDialog } from "../components/dialog";
import { h } from "../dom";
import { when } from "../format";
import { t } from "../i18n";
import { lineDiff } from "./diff";

function diffView(version: CardVersion, current: CardVersion): HTMLElement {
  const lines = lineDiff(current.code, version.code);
  if (lines.length > 1 && lines[lines.length - 1].kind === "same" && lines[lines.length - 1].text === "") lines.pop(); // the final newline
  const changed = lines.filter((line) => line.kind !== "same").length;
  const mark = { same: " ", add: "+", del: "-" };
  return h(
    "div",
    { class: "diff-view" },
    h("p", { class: "muted small" }, changed ? t("cardHistory.diffLead", { n: version.version, current: current.version }) : t("cardHistory.sameCode", { n: version.version, current: current.version })),
    h("pre", { class: "diff", "aria-label": t("cardHistory.diff") }, ...lines.map((line) => h("span", { class: `diff-line ${line.kind}` }, `${mark[line.kind]} ${line.text}\n`))),
  );
}

// Opens the history of `card` (as saved: version `card.version` is current). `restored` gets the card
// after a version was restored as its new current version.
export function openHistory(card: Card, unsaved: boolean, restored: (card: Card) => void): void {
  const list = h("ul", { class: "history-list", "aria-label": t("cardHistory.versions") });
  const more = h("button", { type: "button", class: "ghost small list-more", hidden: true }, t("list.more"));
  const pane = h("div", { class: "history-pane" }, h("p", { class: "muted" }, t("cardHistory.pick")));
  const messages = h("div", {});
  let next: string | null = null;
  let current: CardVersion | null = null;

  const show = async (summary: CardVersionSummary, item: HTMLElement) => {
    list.querySelectorAll(".selected").forEach((el) => el.classList.remove("selected"));
    item.classList.add("selected");
    try {
      current ??= await cardsApi.version(card.id, card.version);
      const version = summary.version === card.version ? current : await cardsApi.version(card.id, summary.version);
      const restore = h("button", { type: "button", class: "primary small", disabled: version.version === card.version }, t("cardHistory.restore", { n: version.version }));
      restore.addEventListener("click", () => void restoreVersion(version));
      pane.replaceChildren(
        h("div", { class: "history-head" }, h("h3", {}, t("cardHistory.versionTitle", { n: version.version, title: version.title })), h("span", { class: "spacer" }), restore),
        diffView(version, current),
      );
    } catch (error) {
      pane.replaceChildren(banner("error", (error as Error).message));
    }
  };

  const restoreVersion = async (version: CardVersion) => {
    const body = [t("cardHistory.restoreBody", { n: version.version, next: card.version + 1 }), unsaved ? t("cardHistory.restoreUnsaved") : null];
    if (!(await confirmDialog(t("cardHistory.restoreTitle", { n: version.version }), body, t("cardHistory.restoreAction"), false))) return;
    try {
      const saved = await cardsApi.update(card.id, card.version, { title: version.title, code: version.code, datasets: version.datasets, tags: version.tags }, version.parameters);
      dialog.close();
      restored(saved);
    } catch (error) {
      messages.replaceChildren(banner("error", t("cardHistory.restoreFailed"), [(error as Error).message]));
    }
  };

  const item = (summary: CardVersionSummary) => {
    const pick = h("button", { type: "button", class: "history-item" },
      h("span", { class: "strong" }, t("common.version", { n: summary.version })),
      summary.version === card.version ? h("span", { class: "pill on" }, t("cardHistory.current")) : null,
      h("span", { class: "muted small" }, when(summary.created_at)),
      h("span", { class: "muted small" }, summary.created_by_name ?? t("cardHistory.unknownAuthor")));
    const li = h("li", { "data-version": summary.version }, pick);
    pick.addEventListener("click", () => void show(summary, li));
    return li;
  };

  const load = async () => {
    try {
      const page = await cardsApi.versions(card.id, next);
      list.append(...page.items.map(item));
      next = page.next;
      more.hidden = !next;
    } catch (error) {
      messages.replaceChildren(banner("error", (error as Error).message));
    }
  };
  more.addEventListener("click", () => void load());
  const dialog = openDialog(t("cardHistory.title", { title: card.title }), [messages, h("div", { class: "history" }, h("div", { class: "history-side" }, list, more), pane)], [closeButton(t("common.close"))], true);
  void load();
}
