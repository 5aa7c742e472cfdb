/**
 * Assertions for programmer errors (broken invariants). Operating errors (bad input,
 * not leader, disk full) are values, never assertions. A failed assertion crashes the
 * process on purpose: continuing with a broken invariant is how data gets lost.
 */
export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never): never {
  throw new AssertionError(`Unreachable: ${JSON.stringify(value)}`);
}
