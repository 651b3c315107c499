export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Reads Server-Sent Events from `url` until `stop` returns true for an event, the stream ends,
 * or `timeoutMs` passes; then closes the connection.
 */
export async function readEvents(
  url: string,
  headers: Record<string, string>,
  stop: (e: SseEvent, all: SseEvent[]) => boolean,
  timeoutMs = 30000,
): Promise<SseEvent[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
    if (res.status !== 200) throw new Error(`SSE answered ${res.status}: ${await res.text()}`);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return events;
      buffer += decoder.decode(value, { stream: true });
      let at: number;
      while ((at = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        const e: SseEvent = { event: 'message', data: '' };
        let data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':') || line === '') continue;
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'id') e.id = value;
          else if (field === 'event') e.event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length === 0 && e.id === undefined && e.event === 'message') continue;
        e.data = data.join('\n');
        data = [];
        events.push(e);
        if (stop(e, events)) {
          controller.abort();
          return events;
        }
      }
    }
  } catch (err) {
    // Aborted by us, or the connection dropped (the server died): like an EventSource, the
    // caller sees what arrived and may reconnect; a test that needs `end` checks for it.
    if (controller.signal.aborted || /terminated|other side closed|ECONNRESET/.test(`${err} ${(err as Error).cause ?? ''}`)) {
      return events;
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
