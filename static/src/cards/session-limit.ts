// The interactive session limit is reached: a dialog lists the open sessions (which card or data, when
// last used) with a button to close each; resolves true once one was closed (the caller tries again).

import { sessionsApi, type CardSession } from "../api/sessions";
import { h } from "../dom";
import { ago } from "../format";
import { t } from "../i18n";

function describe(session: CardSession): string {
  const what = session.card_title ? t("run.sessionOf", { title: session.card_title }) : t("run.sessionScratch");
  const data = session.datasets.length ? t("run.sessionData", { names: session.datasets.join(t("common.listSeparator")) }) : t("run.sessionNoData");
  return `${what} · ${data}`;
}

export async function sessionLimitDialog(): Promise<boolean> {
  const listed = await sessionsApi.list();
  return new Promise((resolve) => {
    let closed = false;
    const dismiss = h("button", { type: "button", class: "ghost" }, t("common.close"));
    const problem = h("p", { class: "error small", hidden: true });
    const rows = listed.sessions.map((session) => {
      const close = h("button", { type: "button", class: "secondary small" }, t("run.closeAndRun"));
      close.addEventListener("click", () => {
        close.disabled = true;
        sessionsApi
          .close(session.id)
          .then(() => {
            closed = true;
            dialog.close();
          })
          .catch((error: Error) => {
            close.disabled = false;
            problem.hidden = false;
            problem.textContent = error.message;
          });
      });
      const since = session.busy ? t("run.sessionBusy") : t("run.sessionSince", { when: ago(session.last_used_at) });
      return h("li", { class: "session-row" }, h("div", {}, h("span", { class: "strong" }, describe(session)), h("span", { class: "muted small" }, since)), close);
    });
    const others = listed.held - listed.sessions.length;
    const dialog = h(
      "dialog",
      { class: "sessions-dialog", "aria-label": t("run.sessionLimitTitle", { limit: listed.limit }) },
      h("h2", {}, t("run.sessionLimitTitle", { limit: listed.limit })),
      h("p", { class: "muted" }, t("run.sessionLimitBody")),
      rows.length ? h("ul", { class: "session-list" }, rows) : h("p", { class: "muted" }, t("run.noSessionsListed")),
      others > 0 ? h("p", { class: "muted small" }, t("run.otherKernels", { n: others })) : null,
      problem,
      h("div", { class: "dialog-actions" }, h("span", { class: "spacer" }), dismiss),
    );
    dismiss.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(closed);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
