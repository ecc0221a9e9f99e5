/**
 * Sizing: from the target concurrency and the flavors, how many nginx and
 * gunicorn processes, how many connections and open files each, and the kernel
 * limits; then the capacity model (config/capacity.ts) checks the result holds
 * the target concurrency and rates (targetRequestsPerSecond,
 * targetNewConnectionsPerSecond against the per-core costs of config/rates.ts),
 * and sizes the limits nginx answers overload with. Pure arithmetic on values
 * the reader returns.
 */
import { capacityModel, CapacityModel, MemoryInputs, overloadLimits, rateLoad, rateModel, rateShortfall, RESERVED_FDS } from "./capacity";
import { defaultWorkerCount, FLAVORS } from "./catalog";
import { HEADROOM, LB_RESERVED_PORTS, LOCAL_PORT_RANGE } from "./ports";
import { MEASURED_RATES } from "./rates";
import type { Reader } from "./reader";
import type { AppKind, StackConfig } from "./types";

/** A node's flavor as config/platform.ts read it (vcpus may be an override). */
export interface HostFlavor {
    flavor: string;
    vcpus: number;
}

/** The nodes the sized processes run on. */
export interface SizedHosts {
    lb: HostFlavor;
    app: HostFlavor;
    appNodes: number;
}

/** OVH flavors give RAM in GB. */
const GB = 1e9;

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
    /** Connections nginx passes to one app node (upstream max_conns): its share of the target, or what gunicornWorkerConnections allows. */
    appNodeConnections: number;
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

    // What an app node runs must not depend on how many nodes there are: scaling the tier then adds
    // nodes and changes the LBs' upstreams, and the nodes already serving keep running (no drain, no
    // restart). So a worker may hold up to the whole target (or what its open files allow), and the
    // node's share is enforced where the node count is known anyway: nginx's max_conns for each node.
    const workerSetting = r.integer("gunicornWorkers", 0, 512);
    const baseWorkers = defaultWorkerCount(s.appVcpus);
    // The one exception: more workers when the base ones' open files cannot hold a node's share.
    const workers = workerSetting || Math.max(baseWorkers, Math.ceil(headroomed / (s.appNodes * perProcessConnections)));
    if (workerSetting > 4 * baseWorkers) {
        warnings.push(
            `gunicornWorkers = ${workerSetting} is far above (2 x ${s.appVcpus} vCPU) + 1 = ${baseWorkers}: every worker is a full Python process ` +
                `(tens of MB each) and gevent workers already hold thousands of connections each. Prefer fewer workers with more worker_connections.`,
        );
    }
    const connectionSetting = r.integer("gunicornWorkerConnections", 0, 1_000_000);
    // Connections per worker: at least gunicorn's default 1000, at most what one process may open.
    const perWorker = (n: number) => Math.min(perProcessConnections, Math.max(1000, n));
    const workerCap = perWorker(headroomed);
    let workerConnections: number | undefined;
    if (s.kind === "wsgi") {
        workerConnections = connectionSetting || workerCap;
        if (workerConnections > perProcessConnections) {
            r.fail("gunicornWorkerConnections", workerConnections, `exceeds what one process may open (maxOpenFiles ${maxOpenFiles} - ${RESERVED_FDS}); add workers instead`);
        }
    } else if (connectionSetting) {
        warnings.push(`gunicornWorkerConnections is ignored for asgi apps: uvicorn workers do not cap connections per worker`);
    }
    // What nginx gives each node's workers: their share of the target, or the operator's setting.
    const givenPerWorker = s.kind === "wsgi" && connectionSetting ? connectionSetting : perWorker(Math.ceil(headroomed / (s.appNodes * workers)));
    return {
        targetConcurrency,
        maxOpenFiles,
        lb: { workerProcesses: lbWorkers, workerConnections: lbWorkerConnections, workerOpenFiles: Math.min(maxOpenFiles, lbWorkerConnections + RESERVED_FDS) },
        gunicorn: { workers, workerConnections, openFiles: Math.min(maxOpenFiles, (workerConnections ?? workerCap) + 1024) },
        appNodeConnections: workers * givenPerWorker,
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
export function checkCapacity(r: Reader, sizing: Sizing, hosts: SizedHosts, gunicornBacklog: number): CapacityModel {
    const capacity = capacityModel({
        lbWorkers: sizing.lb.workerProcesses,
        lbWorkerConnections: sizing.lb.workerConnections,
        lbWorkerOpenFiles: sizing.lb.workerOpenFiles,
        // The LB's own listening ports are reserved out of its ephemeral range.
        lbEphemeralPorts: LOCAL_PORT_RANGE[1] - LOCAL_PORT_RANGE[0] + 1 - LB_RESERVED_PORTS.length,
        appNodes: hosts.appNodes,
        appWorkersPerNode: sizing.gunicorn.workers,
        appWorkerConnections: sizing.gunicorn.workerConnections,
        appWorkerOpenFiles: sizing.gunicorn.openFiles,
        appBacklog: gunicornBacklog,
        appNodeConnections: sizing.appNodeConnections,
        memory: memoryInputs(hosts),
    });
    if (r.problems.length === 0 && capacity.ceiling < sizing.targetConcurrency) {
        r.fail(
            "targetConcurrency",
            sizing.targetConcurrency,
            `the cluster holds at most ${capacity.ceiling} concurrent requests, bound by ${capacity.binding.name} (${capacity.binding.formula}). ` +
                `Raise that limit (more app nodes, gunicornWorkers or gunicornWorkerConnections; lbWorkerProcesses; maxOpenFiles; larger flavors) or lower targetConcurrency`,
        );
    }
    return capacity;
}

/** Memory only where the flavor table knows it (a vCPU override names no RAM). */
function memoryInputs(hosts: SizedHosts): MemoryInputs | undefined {
    const lb = FLAVORS[hosts.lb.flavor];
    const app = FLAVORS[hosts.app.flavor];
    if (!lb || !app || hosts.lb.vcpus !== lb.vcpus || hosts.app.vcpus !== app.vcpus) return undefined;
    return { lbBytes: lb.ramGb * GB, appNodeBytes: app.ramGb * GB, rates: MEASURED_RATES };
}

/**
 * The rate targets and what the vCPUs carry (a problem on the target the flavors cannot carry,
 * naming the binding limit), and the overload limits nginx enforces: lbRequestRateLimit, else the
 * model's request ceiling. `sample`: the app is the bundled sample, whose cost per core is measured.
 */
export function checkRates(r: Reader, sizing: Sizing, hosts: SizedHosts, sample: boolean): Pick<StackConfig, "rates" | "overload"> {
    const targets = { requestsPerSecond: r.integer("targetRequestsPerSecond", 0, 100_000_000), newConnectionsPerSecond: r.integer("targetNewConnectionsPerSecond", 0, 100_000_000) };
    const appRateSetting = r.integer("appRequestsPerCore", 0, 10_000_000);
    // The measured cost is the bundled sample's; another app's is unknown until someone measures it.
    const appRequestsPerCore = appRateSetting || (sample ? MEASURED_RATES.sampleAppRequestsPerCore : undefined);
    const inputs = { lbVcpus: hosts.lb.vcpus, appNodes: hosts.appNodes, appVcpus: hosts.app.vcpus, appWorkersPerNode: sizing.gunicorn.workers, appRequestsPerCore, rates: MEASURED_RATES };
    const rateLimitSetting = r.integer("lbRequestRateLimit", 0, 100_000_000);
    if (appRequestsPerCore === undefined && targets.requestsPerSecond > 0) {
        r.failMissing(
            "appRequestsPerCore",
            `targetRequestsPerSecond (${targets.requestsPerSecond}) can only be checked against what one core of your app serves per second: measure it (npm run bench, or your own load test on one worker) and set it`,
        );
    }
    const shortfall = r.problems.length === 0 ? rateShortfall(inputs, targets, HEADROOM) : undefined;
    if (shortfall) r.fail(shortfall.key, targets[shortfall.key === "targetRequestsPerSecond" ? "requestsPerSecond" : "newConnectionsPerSecond"], `${shortfall.reason}. Fix: ${shortfall.fix}`);
    const targetRate = Math.max(targets.requestsPerSecond, targets.newConnectionsPerSecond);
    if (rateLimitSetting > 0 && rateLimitSetting < targetRate) {
        r.fail(
            "lbRequestRateLimit",
            rateLimitSetting,
            `is below the target rate (${targetRate}/s): the load balancer would refuse the traffic the stack is meant to carry; raise it or use 0 (from the capacity model)`,
        );
    }
    const model = rateModel(inputs);
    return {
        rates: { targets, model, load: rateLoad(inputs, targets), appRequestsPerCore, measured: MEASURED_RATES.provenance },
        overload: overloadLimits({
            rates: model,
            requestRateSetting: rateLimitSetting,
            appNodeConnections: sizing.appNodeConnections,
            lbWorkers: sizing.lb.workerProcesses,
        }),
    };
}
