// CodeMirror 6 with Python; Ctrl/Cmd+Enter runs, Ctrl/Cmd+S saves. `codeViewer`: the same, read-only.

import { indentWithTab } from "@codemirror/commands";
import { EditorState } from "@codemirror/state";
import { python } from "@codemirror/lang-python";
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { basicSetup } from "codemirror";
import { t } from "../i18n";

export interface EditorActions {
  run(): void;
  save(): void;
  changed(code: string): void;
}

export function codeEditor(parent: HTMLElement, doc: string, actions: EditorActions): EditorView {
  return new EditorView({
    parent,
    doc,
    extensions: [
      keymap.of([
        { key: "Mod-Enter", run: () => (actions.run(), true), preventDefault: true },
        { key: "Mod-s", run: () => (actions.save(), true), preventDefault: true },
        indentWithTab,
      ]),
      basicSetup,
      python(),
      placeholder(t("editor.hint")),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) actions.changed(update.state.doc.toString());
      }),
      EditorView.contentAttributes.of({ "aria-label": t("editor.codeLabel") }),
    ],
  });
}

export function codeViewer(parent: HTMLElement, doc: string): EditorView {
  return new EditorView({
    parent,
    doc,
    extensions: [basicSetup, python(), EditorState.readOnly.of(true), EditorView.editable.of(false), EditorView.contentAttributes.of({ "aria-label": t("editor.codeLabel") })],
  });
}
