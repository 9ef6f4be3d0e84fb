// The API's one error shape, {"error": {"code", "message", "details"}}, as an exception.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }

  static from(status: number, body: unknown): ApiError {
    const error = (body as { error?: { code?: string; message?: string; details?: Record<string, unknown> } })?.error;
    if (error?.message) return new ApiError(status, error.code ?? "error", error.message, error.details ?? {});
    if (status === 0) return new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
    return new ApiError(status, "error", `The server answered ${status}. Try again in a moment.`);
  }
}

export function parseJSON(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}
