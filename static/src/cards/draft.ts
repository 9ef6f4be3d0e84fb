// The code and title being edited, kept for the tab: a reload or a new sign-in loses nothing.

export interface Draft {
  title: string;
  code: string;
  datasets: string[];
  // The saved version the draft was started from (none for a new card).
  baseVersion: number | null;
}

const key = (cardId: string | null) => `bi.draft.${cardId ?? "new"}`;

export const drafts = {
  load(cardId: string | null): Draft | null {
    try {
      return JSON.parse(sessionStorage.getItem(key(cardId)) ?? "null");
    } catch {
      return null;
    }
  },
  save(cardId: string | null, draft: Draft): void {
    sessionStorage.setItem(key(cardId), JSON.stringify(draft));
  },
  forget(cardId: string | null): void {
    sessionStorage.removeItem(key(cardId));
  },
};
