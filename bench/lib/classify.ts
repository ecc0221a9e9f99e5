/**
 * Errors by kind, from what the load generators counted. Pure.
 *
 * wrk's own counters mean:
 *  - connect: a TCP connect or TLS handshake failed (refused, reset during
 *    the handshake, closed by the server before the handshake completed);
 *  - read:    the connection failed while a response was awaited (reset by the
 *    peer, or closed mid-response);
 *  - write:   the request could not be written (the peer had reset it);
 *  - timeout: a response came, but later than --timeout;
 *  - status:  responses >= 400.
 * A request the server never answered is not counted by wrk at all: in the
 * `once` shape every connection owes exactly one answer, so the shortfall of
 * answers below the step's concurrency is what was never answered.
 */
import { WrkErrors } from "./wrk";

export interface ErrorsByKind {
    connect: number;
    /** Reset or closed by the server while a request was in flight (wrk read + write). */
    reset: number;
    /** Answered too late (after hold + grace), or never answered during the step. */
    timeout: number;
    /** Of which: never answered. */
    unanswered: number;
    /** HTTP 5xx answers (502/503/504 from nginx, 500 from the app). */
    http5xx: number;
    /** Other answers that are not 2xx (4xx; 3xx would be a redirect we never ask for). */
    otherStatus: number;
    total: number;
}

export interface StepCounts {
    /** Requests that had to be answered: the step's concurrency in the once shape. */
    expected: number;
    /** Answers per status code. */
    codes: Record<string, number>;
    errors: WrkErrors;
}

export function okAnswers(codes: Record<string, number>): number {
    return Object.entries(codes).reduce((s, [code, n]) => (Number(code) >= 200 && Number(code) < 300 ? s + n : s), 0);
}

export function classifyErrors(c: StepCounts): ErrorsByKind {
    let http5xx = 0;
    let otherStatus = 0;
    let answered = 0;
    for (const [code, n] of Object.entries(c.codes)) {
        const status = Number(code);
        answered += n;
        if (status >= 500 && status <= 599) http5xx += n;
        else if (status < 200 || status >= 300) otherStatus += n;
    }
    // Without the script's per-code counts, wrk's "status" counter is all we know: count it as 5xx
    // when no code was recorded (our app never answers 4xx to /wait).
    if (answered === 0 && c.errors.status > 0) http5xx = c.errors.status;
    const unanswered = Math.max(0, c.expected - answered);
    const reset = c.errors.read + c.errors.write;
    const timeout = c.errors.timeout + unanswered;
    return {
        connect: c.errors.connect,
        reset,
        timeout,
        unanswered,
        http5xx,
        otherStatus,
        total: c.errors.connect + reset + timeout + http5xx + otherStatus,
    };
}

/** One line for tables: only the kinds that occurred, e.g. "timeout 120 (unanswered 100), 5xx 3". */
export function describeErrors(e: ErrorsByKind): string {
    if (e.total === 0) return "0";
    const parts: string[] = [];
    if (e.connect) parts.push(`connect ${e.connect}`);
    if (e.reset) parts.push(`reset ${e.reset}`);
    if (e.timeout) parts.push(`timeout ${e.timeout}${e.unanswered ? ` (${e.unanswered} unanswered)` : ""}`);
    if (e.http5xx) parts.push(`5xx ${e.http5xx}`);
    if (e.otherStatus) parts.push(`other ${e.otherStatus}`);
    return parts.join(", ");
}
