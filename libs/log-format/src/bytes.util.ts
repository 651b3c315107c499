/**
 * Byte access for the per-line loops (runner and persister), where a line is ~100 bytes and
 * Buffer's own methods cost more than the work: `readDoubleBE`/`writeDoubleBE` and friends check
 * their arguments and go through a scratch Float64Array byte by byte, where a DataView's methods
 * compile to a load or a store; `copy()` checks its arguments and `subarray()` builds a Buffer
 * through its species, where `set()` from a plain Uint8Array view is the copy alone.
 */

/** A DataView over exactly the bytes of `buf` (a Buffer may be a slice of a larger ArrayBuffer). */
export function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** `buf[start, end)` as a plain Uint8Array view, to `set()` from (see above). */
export function bytesOf(buf: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + start, end - start);
}
