// Who else has the dashboard open: a row of initials, with names on hover.

import { session } from "../auth/session";
import { h } from "../dom";
import type { Viewer } from "./live";
import { t } from "../i18n";

const COLOURS = ["#2e6be6", "#1f8a5b", "#b54708", "#7a3ee0", "#c01574", "#0e7490"];

function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  // A Japanese name reads best as the first character of the family name (山田 花子 → 山).
  if (!/^[\x00-\x7f]/.test(words[0])) return [...words[0]][0];
  return (words.length === 1 ? words[0].slice(0, 2) : words[0][0] + words[words.length - 1][0]).toUpperCase();
}

function colour(id: string): string {
  let n = 0;
  for (const ch of id) n = (n * 31 + ch.charCodeAt(0)) >>> 0;
  return COLOURS[n % COLOURS.length];
}

export function presence(viewers: Viewer[]): HTMLElement {
  const unique = [...new Map(viewers.map((v) => [v.user_id, v])).values()];
  const others = unique.filter((v) => v.user_id !== session.user?.id);
  const label = others.length ? t("presence.others", { names: others.map((v) => v.name || v.email).join(t("common.listSeparator")) }) : t("presence.onlyYou");
  return h(
    "div",
    { class: "presence", "aria-label": label, title: label },
    unique.map((v) => h("span", { class: `avatar${v.user_id === session.user?.id ? " me" : ""}`, style: `background:${colour(v.user_id)}`, title: v.user_id === session.user?.id ? t("presence.you", { name: v.name || v.email }) : v.name || v.email }, initials(v.name || v.email))),
    h("span", { class: "presence-text small muted" }, others.length ? t("presence.count", { n: others.length }) : t("presence.alone")),
  );
}
