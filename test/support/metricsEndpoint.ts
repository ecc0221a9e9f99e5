/** Talking to an exporter a test started: a free-ish port, scraping /metrics, reading a series, stopping it. */
import { ChildProcess } from "child_process";

export const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** A random high port (the exporter fails to bind, and the test with it, in the rare clash). */
export const randomPort = () => 20000 + Math.floor(Math.random() * 20000);

/** GET /metrics, retrying until the exporter listens (or timeoutMs). */
export async function scrape(port: number, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        try {
            const res = await fetch(`http://127.0.0.1:${port}/metrics`);
            return await res.text();
        } catch (e) {
            if (Date.now() > deadline) throw e;
            await sleep(100);
        }
    }
}

/** Ends a process the test started, by its handle. */
export function stop(p: ChildProcess): Promise<void> {
    if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
    return new Promise(resolve => {
        p.once("exit", () => resolve());
        p.kill("SIGTERM");
    });
}

/** The value of one series in Prometheus' text format, or undefined. */
export const seriesValue = (text: string, series: string) => {
    const m = new RegExp(`^${series.replace(/[{}.+"]/g, c => `\\${c}`)} (\\S+)$`, "m").exec(text);
    return m ? Number(m[1]) : undefined;
};
