import { FormattedLine } from './log-line.format';

type Stream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/** Where the CLI writes: data on stdout, everything about the CLI itself on stderr. */
export class Output {
  constructor(
    readonly stdout: Stream = process.stdout,
    readonly stderr: Stream = process.stderr,
  ) {}

  out(text: string): void {
    this.stdout.write(text);
  }

  json(value: unknown): void {
    this.stdout.write(JSON.stringify(value, null, 2) + '\n');
  }

  line(l: FormattedLine): void {
    (l.to === 'stdout' ? this.stdout : this.stderr).write(l.text);
  }

  /** One line about the CLI's own doing, on stderr. */
  notice(message: string): void {
    this.stderr.write(`flashpods: ${message}\n`);
  }

  /** Resolves once everything written so far has been handed to the OS. */
  async flush(): Promise<void> {
    await Promise.all([this.stdout, this.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))));
  }
}
