// The signed-in user of this tab: the token and who it belongs to, kept in sessionStorage so that a
// reload stays signed in and closing the tab signs out.

export interface User {
  id: string;
  email: string;
  name: string;
  role: "admin" | "member";
  locale: "ja" | "en";
}

interface Stored {
  token: string;
  user: User;
  expiresAt: number; // ms since the epoch
}

const KEY = "bi.session";

function read(): Stored | null {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) ?? "null");
  } catch {
    return null;
  }
}

export const session = {
  get token(): string | null {
    return read()?.token ?? null;
  },
  get user(): User | null {
    return read()?.user ?? null;
  },
  // Whether the token has (or is about to) run out; the server has the last word.
  get expired(): boolean {
    const stored = read();
    return !stored || stored.expiresAt - 5000 < Date.now();
  },
  signIn(token: string, user: User, expiresIn: number): void {
    sessionStorage.setItem(KEY, JSON.stringify({ token, user, expiresAt: Date.now() + expiresIn * 1000 }));
  },
  // The user as the server now has them (after changing their name or language).
  update(user: User): void {
    const stored = read();
    if (stored) sessionStorage.setItem(KEY, JSON.stringify({ ...stored, user }));
  },
  // Forgets everything this tab kept for the user, drafts included.
  signOut(): void {
    sessionStorage.clear();
  },
};
