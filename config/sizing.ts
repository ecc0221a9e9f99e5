/**
 * Sizing: from the target concurrency and the flavors, how many nginx and
 * gunicorn processes, how many connections and open files each, and the kernel
 * limits; then the capacity model (config/capacity.ts) checks the result holds
 * the target. Pure arithmetic on values the reader returns.
 */
import { capacityModel, CapacityModel, RESERVED_FDS } from "./capacity";
import { defaultWorkerCount } from "./catalog";
import { HEADROOM, LB_RESERVED_PORTS, LOCAL_PORT_RANGE } from "./ports";
import type { Reader } from "./reader";
import type { AppKind, StackConfig } from "./types";

export interface SizingInputs {
    lbVcpus: number;
    appVcpus: number;
    appNodes: number;
    kind: AppKind;
}

export interface Sizing {
    targetConcurrency: number;
    maxOpenFiles: number;
    lb: Pick<StackConfig["lb"], "workerProcesses" | "workerConnections" | "workerOpenFiles">;
    gunicorn: Pick<StackConfig["gunicorn"], "workers" | "workerConnections" | "openFiles">;
    warnings: string[];
}

export function readSizing(r: Reader, s: SizingInputs): Sizing {
    const warnings: string[] = [];
    const targetConcurrency = r.integer("targetConcurrency", 1, 10_000_000);
    const maxOpenFiles = r.integer("maxOpenFiles", 4096, 1 << 30);
    const perProcessConnections = maxOpenFiles - RESERVED_FDS;
    const headroomed = Math.ceil(targetConcurrency * HEADROOM);

    // nginx: a proxied request holds two connections; add workers when one process cannot hold its share.
    const lbWorkerSetting = r.integer("lbWorkerProcesses", 0, 256);
    const lbWorkers = lbWorkerSetting || Math.max(s.lbVcpus, Math.ceil((2 * headroomed) / perProcessConnections));
    const lbWorkerConnections = Math.max(1024, Math.ceil((2 * headroomed) / lbWorkers));

    const workerSetting = r.integer("gunicornWorkers", 0, 512);
    const baseWorkers = defaultWorkerCount(s.appVcpus);
    const workers = workerSetting || Math.max(baseWorkers, Math.ceil(headroomed / (s.appNodes * perProcessConnections)));
    if (workerSetting > 4 * baseWorkers) {
        warnings.push(
            `gunicornWorkers = ${workerSetting} is far above (2 x ${s.appVcpus} vCPU) + 1 = ${baseWorkers}: every worker is a full Python process ` +
                `(tens of MB each) and gevent workers already hold thousands of connections each. Prefer fewer workers with more worker_connections.`,
        );
    }
    const connectionSetting = r.integer("gunicornWorkerConnections", 0, 1_000_000);
    let workerConnections: number | undefined;
    if (s.kind === "wsgi") {
        workerConnections = connectionSetting || Math.max(1000, Math.ceil(headroomed / (s.appNodes * workers)));
        if (workerConnections > perProcessConnections) {
            r.fail("gunicornWorkerConnections", workerConnections, `exceeds what one process may open (maxOpenFiles ${maxOpenFiles} - ${RESERVED_FDS}); add workers instead`);
        }
    } else if (connectionSetting) {
        warnings.push(`gunicornWorkerConnections is ignored for asgi apps: uvicorn workers do not cap connections per worker`);
    }
    const perWorkerShare = workerConnections ?? Math.ceil(headroomed / (s.appNodes * workers));
    return {
        targetConcurrency,
        maxOpenFiles,
        lb: { workerProcesses: lbWorkers, workerConnections: lbWorkerConnections, workerOpenFiles: Math.min(maxOpenFiles, lbWorkerConnections + RESERVED_FDS) },
        gunicorn: { workers, workerConnections, openFiles: Math.min(maxOpenFiles, perWorkerShare + 1024) },
        warnings,
    };
}

/** Kernel limits sized from the same numbers: accept queues for the target's bursts, open files past every process's limit. */
export function kernelSettings(sizing: Sizing, gunicornBacklog: number): StackConfig["kernel"] {
    const somaxconn = Math.min(65535, Math.max(4096, gunicornBacklog, Math.ceil(sizing.targetConcurrency / 4)));
    return {
        somaxconn,
        synBacklog: somaxconn,
        netdevBacklog: 16384,
        localPortRange: LOCAL_PORT_RANGE,
        fileMax: Math.max(2_097_152, 4 * sizing.maxOpenFiles),
        nrOpen: Math.max(1_048_576, sizing.maxOpenFiles),
    };
}

/** The capacity model of the sized cluster; a problem on targetConcurrency when it cannot hold the target. */
export function checkCapacity(r: Reader, sizing: Sizing, appNodes: number, gunicornBacklog: number): CapacityModel {
    const capacity = capacityModel({
        lbWorkers: sizing.lb.workerProcesses,
        lbWorkerConnections: sizing.lb.workerConnections,
        lbWorkerOpenFiles: sizing.lb.workerOpenFiles,
        // The LB's own listening ports are reserved out of its ephemeral range.
        lbEphemeralPorts: LOCAL_PORT_RANGE[1] - LOCAL_PORT_RANGE[0] + 1 - LB_RESERVED_PORTS.length,
        appNodes,
        appWorkersPerNode: sizing.gunicorn.workers,
        appWorkerConnections: sizing.gunicorn.workerConnections,
        appWorkerOpenFiles: sizing.gunicorn.openFiles,
        appBacklog: gunicornBacklog,
    });
    if (r.problems.length === 0 && capacity.ceiling < sizing.targetConcurrency) {
        r.fail(
            "targetConcurrency",
            sizing.targetConcurrency,
            `the cluster holds at most ${capacity.ceiling} concurrent requests, bound by ${capacity.binding.name} (${capacity.binding.formula}). ` +
                `Raise that limit (more app nodes, gunicornWorkers or gunicornWorkerConnections; lbWorkerProcesses; maxOpenFiles) or lower targetConcurrency`,
        );
    }
    return capacity;
}
