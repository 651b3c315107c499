import type { Request } from 'express';
import { METHODS } from 'node:http';

interface RouteLayer {
  route?: { _methods(): string[] };
  match(path: string): unknown;
}

/**
 * Whether an Express route answers every method Node knows: middleware of a Nest module, which
 * Nest mounts with `app.all` on an exact path and Express 5 registers one method at a time.
 * No controller route does.
 */
export function isCatchAllRoute(route: { _methods(): string[] }): boolean {
  return route._methods().length >= METHODS.length;
}

/**
 * The methods the API's own routes answer on `req.path` (none when the path is unknown), read from
 * the Express router so that the list can never drift from the controllers. Used to tell a wrong
 * method (`405` with `Allow`) from an unknown path (`404`).
 */
export function allowedMethods(req: Request): string[] {
  const stack = (req.app as unknown as { router?: { stack: RouteLayer[] } }).router?.stack ?? [];
  const methods = new Set<string>();
  for (const layer of stack) {
    if (!layer.route || isCatchAllRoute(layer.route)) continue;
    let matched: unknown;
    try {
      matched = layer.match(req.path);
    } catch {
      continue; // a malformed %-escape in a parameter: not this route
    }
    if (matched) for (const m of layer.route._methods()) methods.add(m.toUpperCase());
  }
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}
