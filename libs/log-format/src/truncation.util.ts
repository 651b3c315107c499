const MIB = 1024 * 1024;

/** `[TRUNCATED - log exceeded 50 MB limit]` for the default cap (seed 000 counts 1 MB as 2^20 bytes). */
export function truncationMarkerText(maxBytes: number): string {
  const limit = maxBytes % MIB === 0 ? `${maxBytes / MIB} MB` : `${maxBytes} bytes`;
  return `[TRUNCATED - log exceeded ${limit} limit]`;
}
