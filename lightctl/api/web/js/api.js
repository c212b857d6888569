// The API client: JSON in and out, the session cookie carried by the browser (never a token).

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail ?? `HTTP ${status}`));
    this.status = status;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};

export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data?.detail ?? null);
    if (response.status === 401 && path !== "/session") onUnauthorized(error);
    throw error;
  }
  return data;
}

// The endpoint is not there (yet): FastAPI's own 404 says "Not Found", ours name the missing thing.
export function isUnavailable(err) {
  if (!(err instanceof ApiError)) return false;
  return (err.status === 404 && err.detail === "Not Found") || err.status === 405 || err.status === 501 || err.status === 503;
}

// Every page of a list endpoint, for the map and the overview (the lists are paged server-side).
export async function fetchAll(path, query = {}, pageSize = 10000) {
  const items = [];
  for (let offset = 0; ; offset += pageSize) {
    const page = await api(path, { query: { ...query, limit: pageSize, offset } });
    items.push(...page.items);
    if (items.length >= page.total || page.items.length === 0) return items;
  }
}
