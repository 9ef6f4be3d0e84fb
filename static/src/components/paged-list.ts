// A list page's table that pages: a search box, a sort choice and the list's own filters above it, a
// "show more" button below that appends the next page. A row's tags filter the list when clicked (a chip
// names the tag and clears it). Searching, sorting or filtering starts again from the first page.

import type { ListParams, ListSort, PageOf } from "../api/pages";
import { h } from "../dom";
import { t } from "../i18n";

export interface PagedListOptions<T> {
  load: (params: ListParams, cursor: string | null) => Promise<PageOf<T>>;
  head: HTMLElement; // the table's thead
  row: (item: T, tags: (tags: string[] | undefined) => HTMLElement) => HTMLElement; // tags: clickable pills
  empty: () => HTMLElement; // shown when the list has nothing at all
  // Choices of the list's own filters, each setting some of its parameters ("shared with me").
  choices?: { label: string; options: { label: string; params: ListParams }[] };
}

const SEARCH_DELAY_MS = 250;

export async function pagedList<T>(options: PagedListOptions<T>): Promise<HTMLElement> {
  const params: ListParams = { sort: "updated" };
  const first = await options.load(params, null);
  if (!first.items.length) return options.empty();
  const search = h("input", { type: "search", name: "q", placeholder: t("list.search"), "aria-label": t("list.search"), maxlength: 200 });
  const sort = h(
    "select",
    { name: "sort", "aria-label": t("list.sort") },
    h("option", { value: "updated" }, t("list.sort.updated")),
    h("option", { value: "title" }, t("list.sort.title")),
  );
  const body = h("tbody", {});
  const chip = h("button", { type: "button", class: "ghost small tag-chip", hidden: true });
  const tags = (list: string[] | undefined) =>
    h(
      "span",
      { class: "tags" },
      ...(list ?? []).map((tag) => {
        const pill = h("button", { type: "button", class: "tag", title: t("list.filterTag", { tag }) }, tag);
        pill.addEventListener("click", () => {
          params.tag = tag;
          chip.textContent = t("list.clearTag", { tag });
          chip.hidden = false;
          void reload();
        });
        return pill;
      }),
    );
  chip.addEventListener("click", () => {
    params.tag = undefined;
    chip.hidden = true;
    void reload();
  });
  const choice = options.choices
    ? h("select", { name: "filter", "aria-label": options.choices.label }, ...options.choices.options.map((o, i) => h("option", { value: String(i) }, o.label)))
    : null;
  choice?.addEventListener("change", () => {
    const chosen = options.choices!.options[Number(choice.value)].params;
    for (const option of options.choices!.options) for (const name of Object.keys(option.params)) delete params[name as keyof ListParams];
    Object.assign(params, chosen);
    void reload();
  });
  const more = h("button", { type: "button", class: "list-more" }, t("list.more"));
  const none = h("p", { class: "muted list-none", hidden: true }, t("list.noMatch"));
  let next: string | null = null;
  let generation = 0;

  function show(page: PageOf<T>, append: boolean): void {
    if (!append) body.replaceChildren();
    body.append(...page.items.map((item) => options.row(item, tags)));
    next = page.next;
    more.hidden = !next;
    none.hidden = body.childElementCount > 0;
  }

  async function reload(): Promise<void> {
    const mine = ++generation;
    const page = await options.load(params, null);
    if (mine === generation) show(page, false);
  }

  let timer: number | undefined;
  search.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      params.q = search.value.trim() || undefined;
      void reload();
    }, SEARCH_DELAY_MS);
  });
  sort.addEventListener("change", () => {
    params.sort = sort.value as ListSort;
    void reload();
  });
  more.addEventListener("click", async () => {
    const mine = generation;
    more.disabled = true;
    try {
      const page = await options.load(params, next);
      if (mine === generation) show(page, true);
    } finally {
      more.disabled = false;
    }
  });
  show(first, false);
  return h("div", { class: "paged-list" }, h("div", { class: "list-tools" }, search, sort, ...(choice ? [choice] : []), chip), h("table", { class: "list" }, options.head, body), none, more);
}
