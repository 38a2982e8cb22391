/** Typed errors and close codes of the client socket (docs/protocol.md §1.6, §1.7). */

/** Error codes of `error` frames. */
export const ErrorCode = {
  malformed: 1,
  unauthorized: 2,
  unknown_method: 3,
  not_found: 4,
  too_large: 5,
  rate_limited: 6,
  internal: 7,
  conflict: 8,
  unavailable: 9,
  invalid: 10,
  protocol: 11,
  tree_required: 32,
  terminated: 33,
  wrong_partition: 34,
  policy: 35,
  invalid_mls: 36,
  key_package_rejected: 40,
  mailbox_full: 48,
} as const;
export type ErrorCodeName = keyof typeof ErrorCode;

const codeNames = new Map<number, ErrorCodeName>(Object.entries(ErrorCode).map(([k, v]) => [v, k as ErrorCodeName]));

/** The name of an error code, or `code(N)` for one this SDK does not know. */
export function errorCodeName(code: number): ErrorCodeName | `code(${number})` {
  return codeNames.get(code) ?? `code(${code})`;
}

/** Close codes (docs/protocol.md §1.7). */
export const CloseCode = {
  normal: 1000,
  going_away: 1001,
  abnormal: 1006,
  too_big: 1009,
  protocol_error: 4000,
  auth_failed: 4001,
  auth_timeout: 4002,
  revoked: 4003,
  slow_consumer: 4008,
  too_many_sockets: 4009,
  queue_budget: 4010,
} as const;

/** Close codes after which the client must not reconnect. */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([1009, 4000, 4001, 4003]);

/** An `error` frame answering a request, or a connection-level error (requestId 0). */
export class MimidsError extends Error {
  readonly codeName: string;
  constructor(
    readonly code: number,
    message: string,
    readonly method?: number,
  ) {
    super(`${errorCodeName(code)}: ${message}`);
    this.name = "MimidsError";
    this.codeName = errorCodeName(code);
  }
  /** Whether the same request may succeed later (docs/protocol.md §1.6 "retry?"). */
  get retryable(): boolean {
    return [ErrorCode.rate_limited, ErrorCode.internal, ErrorCode.unavailable, ErrorCode.mailbox_full].includes(this.code as 6);
  }
}

/** The socket closed; requests in flight fail with this. */
export class ConnectionClosedError extends Error {
  constructor(
    readonly closeCode: number,
    readonly reason: string,
  ) {
    super(`connection closed (${closeCode}${reason ? ": " + reason : ""})`);
    this.name = "ConnectionClosedError";
  }
  /** Whether the client stops for good (bad token, revoked, protocol error). */
  get fatal(): boolean {
    return FATAL_CLOSE_CODES.has(this.closeCode);
  }
}

/** The Oblivious HTTP relay or gateway answered an error. */
export class RelayError extends Error {
  constructor(
    readonly status: number,
    readonly where: "relay" | "gateway",
    detail: string,
  ) {
    super(`${where} answered ${status}: ${detail}`);
    this.name = "RelayError";
  }
}

/** A KeyPackage fetch result other than ok (docs/protocol.md §3.2 statuses). */
export class FetchError extends Error {
  static readonly names = ["ok", "unknown_user", "bad_token", "revoked_token", "no_key_package", "malformed", "rate_limited", "internal"];
  constructor(
    readonly status: number,
    readonly userId: string,
    detail: string,
  ) {
    super(`fetch ${userId}: ${FetchError.names[status] ?? `status(${status})`}: ${detail}`);
    this.name = "FetchError";
  }
}
