// What the model calls cost (the README, "Cost"), in words: money, tokens and how a lesson
// was made. Shared by the tree, the course page, the lesson page and the form.
//
// A `usage` is {input_tokens, output_tokens, cache_creation_input_tokens,
// cache_read_input_tokens, cost_usd}; cost_usd is null for a model with no known price.

import { h } from "../dom.js";

const TOKENS = new Intl.NumberFormat("en-US");

/**
 * "$0.0123" under a cent, "$1.23" from a cent on; "cost unknown" for null.
 *
 * The server rounds to 6 decimals: the amount is rounded half up from those decimals,
 * in whole millionths, so $0.00135 shows as $0.0014 whatever the float's last bits say.
 * A free demo says so, rather than pass for a bargain.
 */
export function money(usd, { demo = false } = {}) {
  if (usd === null || usd === undefined) return "cost unknown";
  const micros = Math.round(usd * 1e6);
  if (micros === 0) return demo ? "$0.00 (demo)" : "$0.00";
  const decimals = micros < 10_000 ? 4 : 2;
  const units = Math.floor((micros + 10 ** (6 - decimals) / 2) / 10 ** (6 - decimals));
  if (units === 0) return "under $0.0001";
  const amount = units / 10 ** decimals;
  return `$${amount.toLocaleString("en-US", {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  })}`;
}

/** Every input token, cached or not: what the model read. */
function inputTokens(usage) {
  return (
    usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
  );
}

/** Whether anything was spent: a call that ended, even at an unknown price. */
export function spent(usage) {
  return Boolean(usage) && inputTokens(usage) + usage.output_tokens > 0;
}

/** ["1,834 in (1,200 from cache)", "2,310 out"] */
export function tokenParts(usage) {
  const cached = usage.cache_read_input_tokens
    ? ` (${TOKENS.format(usage.cache_read_input_tokens)} from cache)`
    : "";
  return [
    `${TOKENS.format(inputTokens(usage))} in${cached}`,
    `${TOKENS.format(usage.output_tokens)} out`,
  ];
}

/**
 * Show `texts` in `el` joined by " · " (after a leading one if `lead`), each kept whole:
 * a narrow screen breaks the line between them, never inside "1,834 in".
 */
export function setParts(el, texts, { lead = false } = {}) {
  const key = JSON.stringify([texts, lead]);
  if (el.dataset.parts === key) return;
  el.dataset.parts = key;
  el.replaceChildren(
    ...texts.flatMap((text, i) => [
      i || lead ? " · " : "",
      h("span", { class: "cost-part" }, text),
    ]),
  );
}

/** The whole bill, for a `title`: "Cost: $0.0123", then every kind of token on a line. */
export function breakdown(usage, options, label = "Cost") {
  const amount =
    usage.cost_usd === null
      ? "unknown (no price is known for the model)"
      : money(usage.cost_usd, options);
  const lines = [`${label}: ${amount}`, `${TOKENS.format(usage.input_tokens)} input tokens`];
  if (usage.cache_creation_input_tokens)
    lines.push(`${TOKENS.format(usage.cache_creation_input_tokens)} written to the cache`);
  if (usage.cache_read_input_tokens)
    lines.push(`${TOKENS.format(usage.cache_read_input_tokens)} read from the cache`);
  lines.push(`${TOKENS.format(usage.output_tokens)} output tokens`);
  return lines.join("\n");
}

/** Options for `money` from the page's state: the demo provider's tokens cost nothing. */
export function moneyOptions(state) {
  return { demo: state.health?.provider === "demo" };
}

/**
 * ["Written by claude-sonnet-5-5", "1 attempt", "14.2 s", "ended: end_turn"], from the
 * store's `about` of a lesson (see aboutOf there); [] when nothing is known.
 */
export function aboutParts(about, status) {
  if (!about) return [];
  const parts = [];
  // The demo provider's model id is "demo": "Written by demo" would read as a typo.
  const model = about.model === "demo" ? "the offline demo" : about.model;
  const attempts = about.attempts === 1 ? "1 attempt" : `${about.attempts} attempts`;
  if (status === "generating") {
    // Only what the "Writing this lesson…" above it does not say already.
    if (!model && about.attempts < 2) return [];
    parts.push(model ? `Being written by ${model}` : "Being written again");
    if (about.attempts) parts.push(`attempt ${about.attempts}`);
    return parts;
  }
  if (model) parts.push(`${status === "error" ? "Tried with" : "Written by"} ${model}`);
  if (about.attempts) parts.push(attempts);
  if (about.durationMs !== null) parts.push(`${(about.durationMs / 1000).toFixed(1)} s`);
  if (about.stopReason) parts.push(`ended: ${about.stopReason}`);
  return parts;
}
