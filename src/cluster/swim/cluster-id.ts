/**
 * The cluster id keeps two clusters on one network apart: every packet carries it and a
 * packet with another id is dropped. A node started without --join on a fresh data dir
 * makes one (`newClusterId`); a joining node without one learns it from its seed.
 */
import type { Random } from "../../util/random.ts";

export const CLUSTER_ID_BYTES_MAX = 64;

const CLUSTER_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function isClusterId(text: string): boolean {
  return CLUSTER_ID_PATTERN.test(text);
}

/** 22 characters of base62 (about 131 bits) from the passed random source. */
export function newClusterId(random: Random): string {
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  let text = "";
  for (let i = 0; i < 22; i++) text += alphabet[random.int(0, alphabet.length - 1)];
  return text;
}
