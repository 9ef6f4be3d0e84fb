// Errors from card code, in the UI's language. The kernel and the server mark them with a stable
// `ename` and message prefix (kernels/policy.py, kernels/helpers.py, server/execution/outputs.py,
// session.py, sanitize.py); tests/test_catalog.py checks these patterns against the real messages.

import { has, t, type MessageKey, type Params } from "./index";

interface Known {
  ename: string;
  pattern: RegExp;
  key: MessageKey;
  params?(match: RegExpExecArray): Params;
}

const quoted = (names: string) => [...names.matchAll(/'([^']*)'|"([^"]*)"/g)].map((m) => m[1] ?? m[2]);

// A list of names as 「a」、「b」 / “a”, “b”.
function names(list: string[]): string {
  return list.map((name) => t("kernel.quoted", { name })).join(t("common.listSeparator"));
}

export const KERNEL_ERRORS: Known[] = [
  { ename: "ImportError", pattern: /^import of '([^']+)' is blocked in cards/, key: "kernel.blocked_import", params: (m) => ({ module: m[1] }) },
  { ename: "PermissionError", pattern: /^'([^']+)' is blocked in cards/, key: "kernel.blocked_builtin", params: (m) => ({ name: m[1] }) },
  { ename: "PermissionError", pattern: /^(magic \S+|shell escapes \(!command\)) (is|are) blocked in cards/, key: "kernel.blocked_magic" },
  { ename: "DatasetNotFound", pattern: /^no dataset named (['"])(.*)\1; available: none$/, key: "kernel.dataset_not_found_none", params: (m) => ({ name: m[2] }) },
  { ename: "DatasetNotFound", pattern: /^no dataset named (['"])(.*)\1; available: (.*)$/, key: "kernel.dataset_not_found", params: (m) => ({ name: m[2], available: names(quoted(m[3])) }) },
  { ename: "MemoryError", pattern: /(\d+) MB memory limit/, key: "kernel.memory_limit", params: (m) => ({ mb: Number(m[1]) }) },
  { ename: "MemoryLimitExceeded", pattern: /(\d+) MB/, key: "kernel.memory_limit", params: (m) => ({ mb: Number(m[1]) }) },
  { ename: "KernelDied", pattern: /a fresh kernel is ready/, key: "kernel.died" },
  { ename: "KernelDied", pattern: /no new kernel could be started/, key: "kernel.died_not_replaced" },
  { ename: "OutputTooLarge", pattern: /^/, key: "kernel.message_too_large" },
  { ename: "BackgroundLimitExceeded", pattern: /^/, key: "kernel.background_limit" },
  { ename: "DiskLimitExceeded", pattern: /more than (\d+) MB or (\d+) files/, key: "kernel.disk_limit", params: (m) => ({ mb: Number(m[1]), files: Number(m[2]) }) },
  { ename: "UnsafeOutput", pattern: /which cards may not use/, key: "kernel.unsafe_output" },
];

// The truncation notice the server puts in stderr when a run's output passes the cap.
export const TRUNCATED = /\[output truncated: this run produced more than (.+?) of output/;

// The error output's message in the user's language, or null for an ordinary Python error; `details`
// (of a server error turned into an output) are its parameters.
export function kernelError(ename: string, evalue: string, details: Record<string, unknown> = {}): string | null {
  for (const known of KERNEL_ERRORS) {
    if (known.ename !== ename) continue;
    const match = known.pattern.exec(evalue);
    if (match) return t(known.key, known.params?.(match));
  }
  // Server errors turned into outputs (a dashboard card past the time limit) carry their code as ename.
  const key = `error.${ename}`;
  if (!/^[a-z_]+$/.test(ename) || !has(key)) return null;
  return t(key, Object.fromEntries(Object.entries(details).filter(([, v]) => typeof v === "string" || typeof v === "number")) as Params);
}

export function truncationNotice(text: string): string | null {
  const match = TRUNCATED.exec(text);
  return match ? t("kernel.output_truncated", { limit: match[1] }) : null;
}
