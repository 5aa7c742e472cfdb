/**
 * The simulator's agenda: events ordered by virtual time, ties by insertion order, so a
 * run depends on nothing but its seed.
 */
export class EventQueue<T> {
  readonly #times: number[] = [];
  readonly #orders: number[] = [];
  readonly #items: T[] = [];
  #order = 0;

  get size(): number {
    return this.#items.length;
  }

  push(timeMs: number, item: T): void {
    this.#order += 1;
    this.#times.push(timeMs);
    this.#orders.push(this.#order);
    this.#items.push(item);
    this.#up(this.#items.length - 1);
  }

  peekTime(): number | undefined {
    return this.#times[0];
  }

  pop(): { timeMs: number; item: T } | undefined {
    if (this.#items.length === 0) return undefined;
    const timeMs = this.#times[0] as number;
    const item = this.#items[0] as T;
    const last = this.#items.length - 1;
    this.#swap(0, last);
    this.#times.pop();
    this.#orders.pop();
    this.#items.pop();
    this.#down(0);
    return { timeMs, item };
  }

  #before(a: number, b: number): boolean {
    const ta = this.#times[a] as number;
    const tb = this.#times[b] as number;
    return ta < tb || (ta === tb && (this.#orders[a] as number) < (this.#orders[b] as number));
  }

  #swap(a: number, b: number): void {
    [this.#times[a], this.#times[b]] = [this.#times[b] as number, this.#times[a] as number];
    [this.#orders[a], this.#orders[b]] = [this.#orders[b] as number, this.#orders[a] as number];
    [this.#items[a], this.#items[b]] = [this.#items[b] as T, this.#items[a] as T];
  }

  #up(index: number): void {
    let at = index;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.#before(at, parent)) return;
      this.#swap(at, parent);
      at = parent;
    }
  }

  #down(index: number): void {
    let at = index;
    const size = this.#items.length;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let smallest = at;
      if (left < size && this.#before(left, smallest)) smallest = left;
      if (right < size && this.#before(right, smallest)) smallest = right;
      if (smallest === at) return;
      this.#swap(at, smallest);
      at = smallest;
    }
  }
}
