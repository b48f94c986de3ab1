/**
 * Typed errors and the one table that maps them to exit codes.
 * Library code throws these; only src/cli turns them into process exit codes.
 */
export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  format: 3,
  pairing: 4,
  numeric: 5,
  backend: 6,
  io: 7,
  partial: 8,
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class NolaError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad flags, bad arguments, refusing to overwrite without --force. */
export class UsageError extends NolaError {
  constructor(message: string) { super(message, EXIT.usage); }
}

/** The input file is not what it should be: malformed safetensors, unsupported layout, unknown NOLA version. */
export class FormatError extends NolaError {
  constructor(message: string) { super(message, EXIT.format); }
}

/** LoRA factors that do not pair up: A without B, rank mismatch. */
export class PairingError extends NolaError {
  constructor(message: string) { super(message, EXIT.pairing); }
}

/** NaN/Inf in a factor, a solver that cannot proceed. */
export class NumericError extends NolaError {
  constructor(message: string) { super(message, EXIT.numeric); }
}

/** An optional backend (e.g. the tfjs GPU backend) that was asked for and cannot start. */
export class BackendUnavailableError extends NolaError {
  constructor(message: string) { super(message, EXIT.backend); }
}

/** The filesystem or the machine said no: ENOSPC, EACCES, a missing input file, a factor larger than memory allows. */
export class IoError extends NolaError {
  constructor(message: string) { super(message, EXIT.io); }
}

/** A run over many inputs finished, and some of its files failed (each with its own code in the summary). */
export class PartialRunError extends NolaError {
  constructor(message: string) { super(message, EXIT.partial); }
}

/** Raised when SIGINT arrives during a long operation. */
export class InterruptedError extends NolaError {
  constructor(message = 'interrupted') { super(message, EXIT.interrupted); }
}
