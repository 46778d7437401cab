/*
 * Physical relations the twin relies on. Glass properties and the VFT viscosity law live in one place,
 * features/domain.ts (the features and the twin must agree on them); this file keeps what only the twin uses.
 */

/** max(0, x): how far past a threshold a variable is, in units of its scale; 0 while on the safe side. */
export function excess(x: number): number {
  return Math.max(x, 0);
}
