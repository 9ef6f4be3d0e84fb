// File uploads with a real progress bar: XMLHttpRequest reports bytes sent, fetch does not.

import { session } from "../auth/session";
import { idempotencyKey, withReauth } from "./client";
import { ApiError, parseJSON } from "./errors";

export interface Upload<T> {
  done: Promise<T>;
  abort(): void;
}

function send<T>(url: string, file: File, onProgress: (sent: number, total: number) => void, xhr: XMLHttpRequest,
                 key: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Idempotency-Key", key);
    if (session.token) xhr.setRequestHeader("Authorization", `Bearer ${session.token}`);
    xhr.setRequestHeader("Content-Type", "text/csv");
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onload = () => {
      const body = parseJSON(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as T);
      else reject(ApiError.from(xhr.status, body));
    };
    xhr.onerror = () => reject(ApiError.from(xhr.status === 413 ? 413 : 0, null));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled."));
    xhr.send(file);
  });
}

export function upload<T>(url: string, file: File, onProgress: (sent: number, total: number) => void): Upload<T> {
  let xhr = new XMLHttpRequest();
  const key = idempotencyKey();
  const done = withReauth(() => {
    xhr = new XMLHttpRequest();
    return send<T>(url, file, onProgress, xhr, key);
  });
  return { done, abort: () => xhr.abort() };
}
