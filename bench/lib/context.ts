/**
 * What every part of a bench run shares: the run's context, the log, the
 * memory reading, and the interruption (Ctrl-C or SIGTERM) that every long
 * wait checks.
 */
import * as fs from "fs";
import { StackConfig } from "../../config/types";
import { UpResult } from "../../local/stack";
import { ClusterFacts, Fixtures } from "./configs";
import { ClusterAccess } from "./hosts";
import { runningLoadGenerators, stopLoadGenerators } from "./loadgen";
import { parseMeminfo } from "./memoryGuard";
import { BenchOptions, ConfigName } from "./options";
import { HostRef } from "./sampler";

export const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
export const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms));
export const meminfo = () => parseMeminfo(fs.readFileSync("/proc/meminfo", "utf8"));

export class Interrupted extends Error {}

/** Everything a run shares. */
export interface Ctx {
    o: BenchOptions;
    up: UpResult;
    cfg: StackConfig;
    access: ClusterAccess;
    facts: ClusterFacts;
    fixtures: Fixtures;
    hosts: HostRef[];
    /** The load balancer that holds the public address (with lbCount 2, the pair's holder at stand-up). */
    lbHost: string;
    /** The pair's virtual address on the private network (lbCount 2), whose holder takes the load. */
    lbVip?: string;
    appHosts: string[];
    lbNetns: string;
    clientNetns: string[];
    script: string;
    reserve: number;
    bytesPerRequest: number;
    bytesPerAppWorker: number;
    /** New connections per second every step ramps at (calibrated, or --ramp-rate). */
    rampRate: number;
    /** App workers running now over all nodes (for the next configuration's memory check). */
    appWorkersNow: number;
    applied?: ConfigName;
    /** Each host's lowest memory at a step's start since the configuration was applied (memory per request). */
    memoryBaselines?: Record<string, number>;
}

let interrupted: string | undefined;

export function checkInterrupted(): void {
    if (interrupted) throw new Interrupted(interrupted);
}

export function installSignalHandlers(): void {
    let count = 0;
    const onSignal = (sig: NodeJS.Signals) => {
        count++;
        interrupted = `interrupted by ${sig}`;
        log(`${sig}: stopping the load generators this run started (${runningLoadGenerators().join(", ") || "none"}), then cleaning up`);
        void stopLoadGenerators(1000);
        if (count > 1) {
            log("second signal: exiting now (the cluster may be left up: npm run local -- down --stack <stack>)");
            process.exit(130);
        }
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
}
