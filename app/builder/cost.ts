/** A run's estimated cost as the builder reads it. Browser-safe. */

/** "$0.42", "<$0.01", "$0" (a replay), "—" (the model's price is unknown: set AGENT_PRICES). */
export function formatCost(usd: number | undefined | null): string {
  if (usd === undefined || usd === null) return "—";
  if (usd === 0) return "$0";
  if (usd < 0.01) return "<$0.01";
  return `$${usd < 10 ? usd.toFixed(2) : usd.toFixed(0)}`;
}
