// The card editor: code on the left, its outputs streaming in on the right; run, interrupt, save.

import { setDiagnostics } from "@codemirror/lint";
import type { EditorView } from "@codemirror/view";
import { cardsApi, type Card, type CardParameter } from "../api/cards";
import { datasetsApi, type DatasetSummary } from "../api/datasets";
import { ApiError, errorText } from "../api/errors";
import { AutoRun } from "../cards/auto-run";
import { codeEditor } from "../cards/code-editor";
import { datasetPicker } from "../cards/dataset-picker";
import { drafts, type Draft } from "../cards/draft";
import { openHistory } from "../cards/history";
import { openParameters } from "../cards/parameters-editor";
import { RunStatus } from "../cards/run-status";
import { sessionLimitDialog } from "../cards/session-limit";
import { CardConnection, type SocketMessage, type SyntaxProblem } from "../cards/socket";
import { banner } from "../components/banner";
import { addToDashboardButton } from "../dashboards/add-to-dashboard";
import { h } from "../dom";
import { OutputArea } from "../outputs/area";
import type { Page } from "../router";
import { CardViewer } from "./card-viewer";
import { t, tWith, type MessageKey } from "../i18n";

const DONE_TEXT: Record<string, MessageKey> = { ok: "run.ok", error: "run.error", timeout: "run.timeout", aborted: "run.aborted" };

// `preselect`: the datasets a new card starts with ("New card from this dataset").
// "Press Ctrl+Enter or ▶ Run", with the keys as keys.
function keysHint(): (Node | string)[] {
  return tWith("editor.outputsHint", { keys: [h("kbd", {}, "Ctrl"), document.createTextNode("+"), h("kbd", {}, "Enter")] });
}

// The code a new card starts with: the first chosen dataset loaded ("New card from this dataset").
function starter(datasets: DatasetSummary[], preselect: string[]): string {
  const first = datasets.find((dataset) => dataset.id === preselect[0]);
  return first ? `df = load_dataset(${JSON.stringify(first.name)})\ndf.head()\n` : "";
}

// What the editor says once it is shown again after a version was restored.
let restoredNote: string | null = null;

// `reload` shows the page again (after a version was restored).
export async function cardEditorPage(cardId: string | null, rename: (path: string) => void, reload: () => void, preselect: string[] = []): Promise<Page> {
  const [card, datasets] = await Promise.all([cardId ? cardsApi.get(cardId) : Promise.resolve(null), datasetsApi.list()]);
  if (card?.access === "view") return new CardViewer(card); // read-only, run with their own values
  return new CardEditor(card, datasets, rename, reload, preselect);
}

class CardEditor implements Page {
  readonly element: HTMLElement;
  private cardId: string | null;
  private draft: Draft;
  private parameters: CardParameter[];
  private editor: EditorView;
  private outputs = new OutputArea();
  private status = new RunStatus();
  private connection: CardConnection;
  private runs = 0;
  private activeRun: string | null = null;
  private autoRun: AutoRun;
  private interrupted = false;
  private messages = h("div", { class: "editor-messages" });
  private saveState = h("span", { class: "save-state" });
  private runButton = h("button", { type: "button", class: "primary", title: t("editor.runTitle") }, t("editor.run"));
  private interruptButton = h("button", { type: "button", class: "ghost", disabled: true }, t("editor.interrupt"));
  private saveButton = h("button", { type: "button", class: "secondary", title: t("editor.saveTitle") }, t("common.save"));
  private parametersButton = h("button", { type: "button", class: "ghost" }, t("editor.parameters"));
  private historyButton = h("button", { type: "button", class: "ghost" }, t("editor.history"));
  private titleInput = h("input", { class: "title-input", "aria-label": t("editor.cardTitle"), placeholder: t("common.untitledCard"), maxlength: 200 });
  private placeholder = h("div", { class: "outputs-empty" }, h("p", {}, t("editor.outputsEmpty")), h("p", { class: "muted small" }, ...keysHint()));

  constructor(card: Card | null, datasets: DatasetSummary[], private rename: (path: string) => void, private reload: () => void, preselect: string[]) {
    this.cardId = card?.id ?? null;
    this.parameters = card?.parameters ?? [];
    const saved: Draft = { title: card?.title ?? "", code: card?.code ?? starter(datasets, preselect), datasets: card?.datasets ?? preselect, baseVersion: card?.version ?? null };
    const kept = drafts.load(this.cardId);
    this.draft = kept && kept.baseVersion === saved.baseVersion ? kept : saved;
    this.titleInput.value = this.draft.title;
    this.connection = this.connect();
    this.autoRun = new AutoRun(this.cardId, () => void this.run(true));

    const codePane = h("section", { class: "code-pane", "aria-label": t("editor.code") });
    this.editor = codeEditor(codePane, this.draft.code, {
      run: () => void this.run(),
      save: () => void this.save(),
      changed: (code) => {
        this.edit({ code });
        this.autoRun.changed();
      },
    });
    this.titleInput.addEventListener("input", () => this.edit({ title: this.titleInput.value }));
    this.runButton.addEventListener("click", () => void this.run());
    this.interruptButton.addEventListener("click", () => {
      this.interrupted = true;
      this.connection.send({ type: "interrupt" });
    });
    this.saveButton.addEventListener("click", () => void this.save());
    this.parametersButton.addEventListener("click", () => openParameters(this.parameters, (list) => this.saveParameters(list)));
    this.historyButton.addEventListener("click", () => void this.showHistory());

    const picker = datasetPicker(datasets, this.draft.datasets, (ids) => {
      this.edit({ datasets: ids });
      this.connection.leave(); // the next run starts a session that loads these
      this.connection = this.connect();
    });
    this.element = h(
      "div",
      { class: "page editor-page" },
      h("header", { class: "page-head" }, h("a", { href: "/cards", class: "back", "aria-label": t("editor.back") }, "‹"), this.titleInput, this.saveState, this.parametersButton, this.historyButton, addToDashboardButton(() => this.cardId, (m) => this.say(m)), this.saveButton),
      this.messages,
      h("div", { class: "toolbar" }, this.runButton, this.interruptButton, this.autoRun.element, this.status.element, h("span", { class: "spacer" }), picker),
      h("div", { class: "editor-split" }, codePane, h("section", { class: "output-pane", "aria-label": t("editor.outputs") }, this.placeholder, this.outputs.element)),
    );
    if (kept && kept === this.draft && (kept.code !== saved.code || kept.title !== saved.title)) {
      this.say(banner("info", t("editor.restored"), [t("editor.restoredBody")]));
    }
    if (restoredNote) this.flash(restoredNote);
    restoredNote = null;
    this.showSaveState();
    window.addEventListener("pagehide", this.hidden);
    setTimeout(() => this.editor.focus()); // once the page is shown
  }

  get title(): string {
    return this.draft.title || t("common.newCard");
  }

  // Leaving the editor (another page, or the tab going away) ends its session at once.
  private hidden = () => this.connection.hide();

  leave(): void {
    this.autoRun.stop();
    window.removeEventListener("pagehide", this.hidden);
    this.connection.leave();
    this.status.stopTimer();
    this.editor.destroy();
  }

  private get dirty(): boolean {
    return this.draft.baseVersion === null ? this.draft.code !== "" || this.draft.title !== "" : drafts.load(this.cardId) !== null;
  }

  private edit(change: Partial<Draft>): void {
    this.draft = { ...this.draft, ...change };
    drafts.save(this.cardId, this.draft);
    this.showSaveState();
  }

  private showSaveState(): void {
    const version = this.draft.baseVersion;
    this.historyButton.disabled = version === null;
    this.parametersButton.textContent = this.parameters.length ? t("editor.parametersCount", { n: this.parameters.length }) : t("editor.parameters");
    this.saveState.textContent = version === null ? t("editor.notSavedYet") : this.dirty ? t("editor.unsaved", { n: version }) : t("editor.saved", { n: version });
    this.saveState.classList.toggle("dirty", this.dirty);
  }

  private say(message: HTMLElement | null): void {
    this.messages.replaceChildren(...(message ? [message] : []));
  }

  // Runs -------------------------------------------------------------------
  private connect(): CardConnection {
    return new CardConnection(this.draft.datasets, {
      message: (message) => this.receive(message),
      state: (state, detail) => {
        if (state === "closed" && detail) this.outputs.note(detail, "error");
        if (state === "closed") this.idle();
      },
    }, this.cardId);
  }

  // `auto`: typing paused with Auto-run on; the server interrupts a run still going, and outputs are
  // replaced in place once the new ones come (no empty pane in between).
  private async run(auto = false): Promise<void> {
    if (this.activeRun && !auto) return;
    const runId = `r${++this.runs}`;
    this.activeRun = runId;
    this.interrupted = false;
    this.runButton.disabled = true;
    this.status.busy();
    try {
      await this.connection.open();
      this.connection.send({ type: "execute", code: this.editor.state.doc.toString(), run_id: runId, auto });
    } catch (error) {
      this.status.finished("error", t("run.notRun"));
      this.idle();
      this.refused(error);
    }
  }

  // Why no session could be opened, with what to do: close one (the limit), retry (no capacity), or read
  // the cause (a dataset deleted or not readable, card execution off).
  private refused(error: unknown): void {
    if (error instanceof ApiError && error.code === "session_limit") {
      this.say(null);
      void sessionLimitDialog().then((closed) => (closed ? this.run() : this.say(banner("warning", error.message))));
      return;
    }
    const retry = h("button", { type: "button", class: "secondary small" }, t("run.retry"));
    retry.addEventListener("click", () => {
      this.say(null);
      void this.run();
    });
    const again = error instanceof ApiError && (error.code === "no_capacity" || error.code === "unavailable");
    this.say(banner("error", (error as Error).message, [], again ? [retry] : []));
  }

  private idle(): void {
    this.activeRun = null;
    this.runButton.disabled = false;
    this.interruptButton.disabled = true;
  }

  private receive(message: SocketMessage): void {
    const ours = message.run_id === this.activeRun;
    switch (message.type) {
      case "status":
        if (ours && message.state === "busy") {
          this.outputs.replaceOnNext();
          this.placeholder.hidden = true;
          this.interruptButton.disabled = false;
        }
        break;
      case "output":
        if (message.output && (ours || !message.run_id)) {
          this.placeholder.hidden = true;
          this.outputs.add(message.output);
        }
        break;
      case "done":
        if (!ours) break;
        this.outputs.settle();
        this.showSyntax(message.syntax ?? null);
        if (message.status === "syntax_error") {
          this.status.finished("error", t("run.syntaxError", { line: message.syntax?.line ?? 1 }));
          this.idle();
          break;
        }
        if (typeof message.execution_time_ms === "number") this.autoRun.ran(message.execution_time_ms);
        // A run that did not happen (its done has a code and no time) never says "ran in 0 ms".
        if (this.interrupted && message.status !== "ok") this.status.finished("idle", t("run.interrupted"), message.execution_time_ms ?? undefined);
        else this.status.finished(message.status === "ok" ? "ok" : "error", t(DONE_TEXT[message.status ?? ""] ?? "run.ended"), message.execution_time_ms ?? undefined);
        // A timeout's own error output says so above its traceback; other ends get a note.
        if (message.message && message.status !== "timeout") this.outputs.note(errorText(message.code ?? "", message.details ?? {}, message.message), message.status === "ok" ? "info" : "error");
        this.idle();
        break;
      case "error":
        this.outputs.note(message.message ? errorText(message.code ?? "", {}, message.message) : t("run.badMessage"), "error");
        if (ours) {
          this.status.finished("error", t("run.notRun"));
          this.idle();
        }
        break;
      case "outputs_lost":
        this.outputs.note(t("run.outputsLost"), "error");
        break;
      case "kernel_restarted":
        this.outputs.note(t("run.kernelRestarted", { reason: message.reason ?? "" }), "error");
        break;
      case "closed":
      case "broken":
        this.outputs.note(t("run.sessionClosed", { reason: message.reason ?? t("run.closed") }), "info");
        this.status.finished("idle", t("run.sessionEnded"));
        this.idle();
        break;
    }
  }

  // Marks where the code does not parse (from the server's check of an auto-run), or clears the mark.
  private showSyntax(problem: SyntaxProblem | null): void {
    const doc = this.editor.state.doc;
    const diagnostics = [];
    if (problem) {
      const line = doc.line(Math.min(Math.max(problem.line, 1), doc.lines));
      const from = Math.min(line.from + Math.max(problem.column, 1) - 1, line.to);
      diagnostics.push({ from, to: Math.max(from, line.to), severity: "error" as const, message: problem.message });
    }
    this.editor.dispatch(setDiagnostics(this.editor.state, diagnostics));
  }

  // Saving -----------------------------------------------------------------
  // Saves the parameters as a new version with the code as it is; what the server refuses about one of
  // them goes back to the parameters dialog.
  private async saveParameters(parameters: CardParameter[]): Promise<void> {
    const problem = await this.save(this.draft.baseVersion, parameters);
    if (problem instanceof ApiError && String(problem.details.pointer ?? "").startsWith("/parameters")) throw problem;
  }

  // The saved card's versions; a restored one is loaded as the card (an unsaved draft is dropped).
  private async showHistory(): Promise<void> {
    if (this.cardId === null) return;
    const card = await cardsApi.get(this.cardId).catch((error: unknown) => {
      this.say(banner("error", (error as Error).message));
      return null;
    });
    if (!card) return;
    openHistory(card, this.dirty, (restored) => {
      drafts.forget(restored.id);
      restoredNote = t("cardHistory.restored", { n: restored.version });
      this.reload(); // the page again, from the restored version
    });
  }

  // The error when it was not saved (shown in the page), else null.
  private async save(from = this.draft.baseVersion, parameters = this.parameters): Promise<unknown> {
    const fields = { title: this.draft.title.trim() || t("common.untitledCard"), code: this.editor.state.doc.toString(), datasets: this.draft.datasets };
    this.saveButton.disabled = true;
    this.saveButton.textContent = t("common.saving");
    try {
      const card = this.cardId === null || from === null ? await cardsApi.create(fields, parameters) : await cardsApi.update(this.cardId, from, fields, parameters);
      this.parameters = card.parameters;
      drafts.forget(this.cardId);
      if (this.cardId === null) this.rename(`/cards/${card.id}`);
      this.autoRun.saved(card.id);
      this.connection.savedAs(card.id);
      this.cardId = card.id;
      this.draft = { ...this.draft, title: card.title, baseVersion: card.version };
      this.titleInput.value = card.title;
      this.say(null);
      this.flash(t("editor.savedAs", { n: card.version }));
      return null;
    } catch (error) {
      this.say(this.saveProblem(error, fields.code));
      return error;
    } finally {
      this.saveButton.disabled = false;
      this.saveButton.textContent = t("common.save");
      this.showSaveState();
    }
  }

  private flash(text: string): void {
    const note = banner("success", text);
    this.say(note);
    setTimeout(() => note.remove(), 4000);
  }

  private saveProblem(error: unknown, code: string): HTMLElement {
    if (!(error instanceof ApiError) || error.status !== 409) return banner("error", t("editor.notSaved"), [(error as Error).message]);
    const current = Number(error.details.current_version);
    const overwrite = h("button", { type: "button", class: "danger small" }, t("editor.overwrite"));
    overwrite.addEventListener("click", () => void this.save(current));
    // The clipboard is there on https and localhost only.
    const copy = navigator.clipboard ? h("button", { type: "button", class: "ghost small" }, t("editor.copy")) : null;
    copy?.addEventListener("click", () => void navigator.clipboard.writeText(code).then(() => (copy.textContent = t("editor.copied"))));
    return banner(
      "warning",
      t("editor.conflictTitle"),
      [t("editor.conflictBody", { from: this.draft.baseVersion ?? 0, current, next: current + 1 })],
      copy ? [overwrite, copy] : [overwrite],
    );
  }
}
