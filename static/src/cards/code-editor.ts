// CodeMirror 6 with Python; Ctrl/Cmd+Enter runs, Ctrl/Cmd+S saves.

import { indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { basicSetup } from "codemirror";

export interface EditorActions {
  run(): void;
  save(): void;
  changed(code: string): void;
}

const HINT = 'df = load_dataset("sales")\ndf.groupby("店舗")["売上"].sum()\n\n# The last expression is shown: a DataFrame as a table, a Bokeh figure as a chart.';

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
      placeholder(HINT),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) actions.changed(update.state.doc.toString());
      }),
      EditorView.contentAttributes.of({ "aria-label": "Card code (Python)" }),
    ],
  });
}
