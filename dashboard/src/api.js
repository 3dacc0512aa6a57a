// Calls go to the dashboard's own origin: /api/<service>/v1/... is forwarded with the user's token.
const KEY = "gridgov.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(KEY); },
  set token(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
  claims() {
    const token = this.token;
    if (!token) return null;
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return null;
    }
  },
};

function headers() {
  return session.token ? { Authorization: `Bearer ${session.token}` } : {};
}

export async function get(service, path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") query.append(k, v);
  const url = `/api/${service}/v1/${path}${query.size ? `?${query}` : ""}`;
  const response = await fetch(url, { headers: headers() });
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, problem);
  }
  return response.json();
}

/** Every page of a cursor-paginated list (bounded, so a huge region cannot hang the page). */
export async function getAll(service, path, params = {}, maxPages = 20) {
  const items = [];
  let cursor;
  for (let i = 0; i < maxPages; i += 1) {
    const page = await get(service, path, { ...params, cursor });
    items.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return items;
}

export async function photoUrl(sha256) {
  const response = await fetch(`/api/inspection/v1/photos/${sha256}`, { headers: headers() });
  if (!response.ok) throw new ApiError(response.status, null);
  return URL.createObjectURL(await response.blob());
}

export async function demoToken(identity) {
  const response = await fetch(`/auth/demo/${encodeURIComponent(identity)}`, { method: "POST" });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return (await response.json()).token;
}

/**
 * Server-sent events over fetch: EventSource cannot send an Authorization header, and a
 * token in the URL would end up in access logs. Reconnects with backoff until stopped.
 */
export function liveStream({ onEvent, onState }) {
  let stopped = false;
  let controller = null;
  let delay = 1000;

  async function connect() {
    while (!stopped) {
      controller = new AbortController();
      onState("connecting");
      try {
        const response = await fetch("/live", { headers: headers(), signal: controller.signal });
        if (!response.ok) throw new ApiError(response.status, null);
        onState("on");
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let match;
          while ((match = /\r?\n\r?\n/.exec(buffer))) {
            const frame = buffer.slice(0, match.index);
            buffer = buffer.slice(match.index + match[0].length);
            const data = frame.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
            if (data) onEvent(JSON.parse(data));
          }
        }
      } catch (err) {
        if (stopped) return;
        if (err instanceof ApiError && err.status === 401) { onState("off"); return; }
      }
      if (stopped) return;
      onState("off");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }
  connect();
  return () => { stopped = true; controller?.abort(); };
}
