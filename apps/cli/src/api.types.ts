import { JobStatus } from '@flashpods/contracts';

/** A job as the API shows it (`GET /jobs/:id`). */
export interface JobView {
  id: string;
  tenant: string;
  status: JobStatus;
  image: string;
  command: string[] | null;
  env: Record<string, string>;
  secrets: string[];
  labels: Record<string, string>;
  timeout_seconds: number;
  limits: { memory_mb: number; cpus: number; pids: number };
  network: boolean;
  exit_code: number | null;
  error: { code: string; message: string } | null;
  runner_id: string | null;
  created_at: string;
  started_at: string | null;
  running_at: string | null;
  finished_at: string | null;
  cleaned_at: string | null;
  log: { bytes: number; lines: number; truncated: boolean; mode: 'durable' | 'fast' | null; lines_lost: boolean };
}

export interface JobPage {
  jobs: JobView[];
  next_cursor: string | null;
}

/** One stored line (`GET /jobs/:id/logs`, and each `line` event of the stream). */
export interface LogEntry {
  seq: number;
  ts: string;
  stream: string;
  level: string;
  line: string;
}

export interface LogPage {
  logs: LogEntry[];
  next_after_seq: number;
  job: JobView;
}

/** The stream's `end` event. `status` is `deleted` when the job vanished while followed. */
export interface StreamEnd {
  status: string;
  exit_code: number | null;
  error_code: string | null;
}

/** The body of `POST /jobs`. */
export interface CreateJobBody {
  image: string;
  command?: string[];
  env?: Record<string, string>;
  secrets?: Record<string, string>;
  labels?: Record<string, string>;
  timeout_seconds?: number;
  limits?: { memory_mb?: number; cpus?: number; pids?: number };
  network?: boolean;
}
