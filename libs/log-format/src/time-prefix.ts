const pad2 = (n: number) => (n < 10 ? '0' : '') + n;
const pad3 = (n: number) => (n < 10 ? '00' : n < 100 ? '0' : '') + n;

/** `[HH:MM:SS.mmm] ` in UTC, 24-hour, the prefix of every stored line (seed 000). */
export function formatTimePrefix(ms: number): string {
  const d = new Date(ms);
  return `[${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}.${pad3(d.getUTCMilliseconds())}] `;
}

/** Byte length of every prefix: `[HH:MM:SS.mmm] `. */
export const TIME_PREFIX_BYTES = 15;

/** Bytes a line of `textBytes` takes in the log file: prefix, text, newline. The cap counts these. */
export function storedLineBytes(textBytes: number): number {
  return TIME_PREFIX_BYTES + textBytes + 1;
}
