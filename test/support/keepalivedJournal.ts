/**
 * What keepalived did on the LBs of a local cluster, read from each host's journal through the
 * cloud's console (no SSH: it works while the address moves): its state changes and the health
 * check's reasons (hostctl's check logs why it failed; keepalived logs only its exit status).
 * For e2e tests to print when a scenario about the pair fails.
 */
import { test } from "node:test";
import type { LocalCloud } from "../../local/cloud";

export async function keepalivedEvents(cloud: LocalCloud, lbNames: string[], sinceMs: number): Promise<string[]> {
    const lines: string[] = [];
    for (const name of lbNames) {
        if (!cloud.hosts().some(h => h.name === name && h.running)) continue;
        const journal = `journalctl --since @${Math.floor(sinceMs / 1000)} -o short-precise --no-pager _SYSTEMD_UNIT=keepalived.service + SYSLOG_IDENTIFIER=pycluster-vrrp-check`;
        const out = (await cloud.consoleRun(name, `${journal} | grep -iE 'entering|script|fault|master|backup|pycluster-vrrp-check' || true`)).stdout;
        lines.push(...out.split("\n").filter(Boolean).map(l => `${name}: ${l}`));
    }
    return lines;
}

/** keepalived's events since `sinceMs` as one block to print beside a failed assertion. */
export async function keepalivedReport(cloud: LocalCloud, lbNames: string[], sinceMs: number): Promise<string> {
    const events = await keepalivedEvents(cloud, lbNames, sinceMs).catch((err: Error) => [`(keepalived's journal unavailable: ${err.message})`]);
    return ["keepalived during this scenario:", ...(events.length ? events : ["(no state change, no failed check)"])].join("\n  ");
}

/**
 * A scenario of a pair's e2e: skipped with `skip()`'s reason, if any; when it fails, keepalived's
 * events on the LBs `pair()` names (since 5 s before it started) are printed before the failure
 * (nothing is printed while no pair is up).
 */
export function pairScenario(
    name: string,
    fn: () => Promise<void>,
    o: { skip: () => string | undefined; pair: () => { cloud: LocalCloud; lbNames: string[] } | undefined },
): void {
    test(name, async t => {
        const skip = o.skip();
        if (skip) return t.skip(skip);
        const started = Date.now();
        try {
            await fn();
        } catch (e) {
            const pair = o.pair();
            if (pair) console.log(await keepalivedReport(pair.cloud, pair.lbNames, started - 5000));
            throw e;
        }
    });
}
