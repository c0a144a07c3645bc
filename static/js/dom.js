// Small DOM helpers. Data always goes in as text nodes or attribute values, never as
// markup: the only HTML the page ever parses is the server's sanitised lesson content.

/** Create an element: h("a", {href, class, onclick}, "text", child, ...). */
export function h(tag, props = null, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(
    ...children.flat().filter((child) => child !== null && child !== undefined && child !== false),
  );
  return el;
}

/** Set text only when it differs, so live regions and observers see real changes only. */
export function setText(el, text) {
  const value = String(text ?? "");
  if (el.textContent !== value) el.textContent = value;
}

/** Set or remove an attribute (null/false removes), only when it differs. */
export function setAttr(el, name, value) {
  if (value === null || value === undefined || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
    return;
  }
  const text = value === true ? "" : String(value);
  if (el.getAttribute(name) !== text) el.setAttribute(name, text);
}

/**
 * Make `parent`'s children match `items`, reusing the element of each key.
 *
 * Reuse keeps focus, spinners and scroll positions intact while the state changes
 * under them; `create(item)` builds a new element, `update(el, item)` brings it up to date.
 */
export function syncKeyed(parent, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of parent.children) existing.set(child.dataset.key, child);
  let cursor = parent.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    let node = existing.get(key);
    if (node) {
      existing.delete(key);
    } else {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    if (node === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(node, cursor);
  }
  for (const stale of existing.values()) stale.remove();
}

/** A spinner for busy states; purely visual, the words next to it say what is happening. */
export function spinner() {
  return h("span", { class: "spinner", "aria-hidden": "true" });
}
