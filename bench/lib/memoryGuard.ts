/**
 * The memory guard's arithmetic. Pure: the runner feeds it /proc/meminfo.
 *
 * Everything here shares one machine: the load generators, the load
 * balancer and the app nodes. Before a configuration starts its processes and
 * before each step, the guard predicts what they will take and refuses what
 * would leave less than the reserve available; while a step runs, a
 * MemAvailable below the reserve aborts it. The per-request figure starts from
 * a measured default and only ever grows with what the steps actually took.
 */

export const MiB = 1024 * 1024;

/** Measured on these machines: ~78 KiB per in-flight request end to end at 50k (wrk, TLS, nginx, gevent, kernel). */
export const DEFAULT_BYTES_PER_REQUEST = 96 * 1024;
/** A gevent gunicorn worker of the sample app, proportional set size, measured (conservative). */
export const DEFAULT_BYTES_PER_APP_WORKER = 40 * MiB;

export interface MemInfo {
    totalBytes: number;
    availableBytes: number;
}

/** Parses /proc/meminfo (values in kB). */
export function parseMeminfo(text: string): MemInfo {
    const kb = (key: string) => {
        const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
        if (!m) throw new Error(`/proc/meminfo has no ${key}`);
        return Number(m[1]) * 1024;
    };
    return { totalBytes: kb("MemTotal"), availableBytes: kb("MemAvailable") };
}

/** The floor: the larger of the requested reserve and 5% of the machine. */
export function reserveBytes(totalBytes: number, reserveMiB: number): number {
    return Math.max(reserveMiB * MiB, Math.round(totalBytes * 0.05));
}

export interface Prediction {
    /** Bytes the action is expected to take. */
    needBytes: number;
    /** What may be taken: available minus the reserve. */
    budgetBytes: number;
    fits: boolean;
    /** The largest concurrency (for a step) or process count (for a configuration) that fits. */
    largestThatFits: number;
    explanation: string;
}

const gib = (b: number) => `${(b / 1024 / MiB).toFixed(1)} GiB`;

/** `count` units of `bytesEach` against MemAvailable minus the reserve; the caller words the explanation. */
function budget(count: number, bytesEach: number, availableBytes: number, reserve: number): Omit<Prediction, "explanation"> {
    const needBytes = count * bytesEach;
    const budgetBytes = availableBytes - reserve;
    return { needBytes, budgetBytes, fits: needBytes <= budgetBytes, largestThatFits: Math.max(0, Math.floor(budgetBytes / bytesEach)) };
}

/** Will `concurrency` in-flight requests fit? */
export function predictStep(concurrency: number, bytesPerRequest: number, availableBytes: number, reserve: number): Prediction {
    const b = budget(concurrency, bytesPerRequest, availableBytes, reserve);
    return {
        ...b,
        explanation:
            `${concurrency} requests x ${Math.round(bytesPerRequest / 1024)} KiB = ${gib(b.needBytes)} needed, ` +
            `${gib(availableBytes)} available - ${gib(reserve)} reserve = ${gib(b.budgetBytes)}` +
            (b.fits ? "" : `: would exhaust memory (at most ~${b.largestThatFits} requests fit)`),
    };
}

/** Will a configuration's extra processes (e.g. 4 nodes x 100 gunicorn workers) fit, before any load? */
export function predictProcesses(processes: number, bytesPerProcess: number, availableBytes: number, reserve: number): Prediction {
    const b = budget(processes, bytesPerProcess, availableBytes, reserve);
    return {
        ...b,
        explanation:
            `${processes} processes x ${Math.round(bytesPerProcess / MiB)} MiB = ${gib(b.needBytes)} needed, ${gib(b.budgetBytes)} to spare` +
            (b.fits ? "" : `: would exhaust memory (at most ~${b.largestThatFits} processes fit)`),
    };
}

/**
 * What a finished step teaches: bytes per in-flight request = the drop of
 * MemAvailable from before the step to its lowest point, over the requests
 * that were in flight. Never lowers the estimate (one lucky step must not let
 * the next one through), and ignores steps too small to measure.
 */
export function learnBytesPerRequest(current: number, availableBefore: number, lowestDuring: number, inFlight: number): number {
    if (inFlight < 1000) return current;
    const observed = (availableBefore - lowestDuring) / inFlight;
    return observed > current ? Math.round(observed) : current;
}

/** The running check: abort when MemAvailable is below the reserve. */
export function mustAbort(availableBytes: number, reserve: number): boolean {
    return availableBytes < reserve;
}
