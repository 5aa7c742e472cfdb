/**
 * The APIs this broker answers, by api key. ApiVersions answers from this list, so a
 * handler registered here is advertised and one that is not is never reached.
 */
import { assert } from "../util/assert.ts";
import type { ApiHandler } from "./handler.ts";

export interface ApiVersionRange {
  apiKey: number;
  minVersion: number;
  maxVersion: number;
}

export class HandlerRegistry {
  readonly #handlers = new Map<number, ApiHandler>();

  register(handler: ApiHandler): void {
    const apiKey = handler.request.apiKey;
    assert(!this.#handlers.has(apiKey), `Api key ${apiKey} registered twice`);
    const [min, max] = handler.versions;
    const [validMin, validMax] = handler.request.validVersions;
    assert(min >= validMin, `${handler.request.name}: min version below the table's`);
    assert(max <= validMax, `${handler.request.name}: max version above the table's`);
    assert(min <= max, `${handler.request.name}: empty version range`);
    this.#handlers.set(apiKey, handler);
  }

  get(apiKey: number): ApiHandler | undefined {
    return this.#handlers.get(apiKey);
  }

  apiVersionsList(): ApiVersionRange[] {
    return [...this.#handlers.values()]
      .map((h) => ({
        apiKey: h.request.apiKey,
        minVersion: h.advertisedMinVersion ?? h.versions[0],
        maxVersion: h.versions[1],
      }))
      .sort((a, b) => a.apiKey - b.apiKey);
  }
}
