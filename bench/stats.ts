// Small statistics over timing samples, shared by the Deno side and the Bun runner.

/** Summary of a set of samples, in the samples' unit. */
export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly p90: number;
  readonly min: number;
  readonly mean: number;
}

/** The `q`-quantile (0..1) of `sorted`, by linear interpolation. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const weight = position - lower;
  return sorted[lower]! * (1 - weight) + sorted[upper]! * weight;
}

/** Median, p90, min and mean of `samples`. */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((total, x) => total + x, 0);
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    min: sorted[0] ?? NaN,
    mean: sorted.length === 0 ? NaN : sum / sorted.length,
  };
}

/**
 * The orders of a Williams design over `n` items, as index lists: each order
 * has every item once, and over all of them every item runs directly after
 * every other equally often (n orders for even n, 2n for odd n > 1) and leads
 * equally often. Rotating one order would not do that: with rotation each
 * contender always follows the same one, so whatever that one leaves behind
 * (an owner process that sat idle while another process ran its round is
 * slower for its next tens of round trips here) lands on the same contender
 * every round.
 */
export function balancedOrders(n: number): number[][] {
  if (n <= 1) return [[...Array(Math.max(n, 0)).keys()]];
  const first = [0];
  for (let low = 1, high = n - 1; first.length < n;) {
    first.push(low++);
    if (first.length < n) first.push(high--);
  }
  const orders = Array.from({ length: n }, (_, shift) => first.map((i) => (i + shift) % n));
  return n % 2 === 0 ? orders : [...orders, ...orders.map((order) => [...order].reverse())];
}
