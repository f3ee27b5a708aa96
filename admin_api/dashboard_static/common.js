// The dashboard's shared parts: API requests, the error box, formatting and table helpers.

const API = "/api/v4";

export const $ = (id) => document.getElementById(id);

class ApiFailure extends Error {}

const TIMEOUT_MS = 8000;         // a request unanswered this long fails, so polling goes on

// One API request; resolves to the JSON body of a {"code": 0} answer, else throws ApiFailure.
export async function api(path, method = "GET") {
  let response;
  try {
    response = await fetch(API + path, {
      method, headers: { Accept: "application/json" }, cache: "no-store", signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    const why = error.name === "TimeoutError" ? `no answer within ${TIMEOUT_MS / 1000} s` : error.message;
    throw new ApiFailure(`${method} ${API}${path}: the broker does not answer (${why})`);
  }
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok || body === null || body.code !== 0) {
    const detail = body && body.message ? body.message : response.statusText;
    const code = body && body.code !== undefined ? ` (code ${body.code})` : "";
    throw new ApiFailure(`${method} ${API}${path}: ${response.status}${code} ${detail}`);
  }
  return body;
}

const describe = (error) => (error instanceof ApiFailure ? error.message : `Error: ${error.message}`);

// Polling errors: shown until the next poll succeeds.
export function showError(error) {
  const box = $("error");
  box.textContent = describe(error);
  box.hidden = false;
}

export function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// Errors of what the user did (kick, delete, restart, paging): kept until dismissed or the next action.
export function showActionError(error) {
  $("action-error-text").textContent = describe(error);
  $("action-error").hidden = false;
}

export function clearActionError() {
  $("action-error").hidden = true;
  $("action-error-text").textContent = "";
}

export const number = (n) => Number(n).toLocaleString("en");

export function bytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(n), unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export function emptyRow(tbody, columns, text) {
  const td = tbody.insertRow().insertCell();
  td.colSpan = columns;
  td.className = "empty";
  td.textContent = text;
}

export function button(label, accessibleName, onClick, className) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.setAttribute("aria-label", accessibleName);
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== undefined) search.set(key, value);
  return search.toString();
}


// Write text only when it changes (screen readers announce every write to a live region).
export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// Re-render `container` and give focus back to the control with the same accessible name.
export function keepFocus(container, render) {
  const active = document.activeElement;
  const label = active !== null && container.contains(active) ? active.getAttribute("aria-label") : null;
  render();
  if (label !== null) container.querySelector(`[aria-label="${CSS.escape(label)}"]`)?.focus();
}

// Run a user action, show its error if it fails, then refresh what it changed; true if it worked.
export async function act(action, refresh) {
  clearActionError();
  try {
    await action();
    if (refresh) await refresh();
    return true;
  } catch (error) {
    showActionError(error);
    return false;
  }
}
