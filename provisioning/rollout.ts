/**
 * The rollout, the program's side: what happens when a change reaches the app nodes, in one place.
 * hostctl's rollout module (provisioning/host/hostctl/rollout.py) is the hosts' side of it.
 *
 * 1. Every node stages the change and checks it with the real tools, then smoke-boots it on a spare
 *    port (`app --check-only`); no node changes before every node passed.
 * 2. Batch by batch (rolloutBatchSize), each node drains itself (refuses new connections; nginx
 *    retries them elsewhere), switches, and passes its health gate, or goes back to what it had and
 *    stops the rollout (`app`).
 * 3. The load balancer admits it back: takes it into rotation, checks it reaches the node and the
 *    site through nginx, and waits until nginx counts the node as alive again (`admitCommand`).
 *    Only then does the next batch start. With a pair, both LBs admit it, one after the other.
 *
 * A change to the load balancers themselves (nginx) rolls one LB at a time, the one holding the public
 * address last (`lbRolloutSteps`): each is validated (nginx -t), switched, reloaded and checked
 * answering before the next one switches.
 */
import type { StackConfig } from "../config/types";
import { hostctlCommand } from "./hostContract";
import { FAIL_TIMEOUT_S } from "./render/nginxUpstream";

/** The plan's timings and shape for one stack, from its settings. */
export interface RolloutPlan {
    /** Seconds a node's health gate waits for the new workers before it rolls back. */
    gateTimeout: number;
    /**
     * Seconds a drain lasts if the node's admit step never runs (its change failed): longer than a
     * node's change can take; then the load balancer returns the node once it is healthy.
     */
    drainLeaseSeconds: number;
    /** A tier no larger than one batch has nowhere to send traffic meanwhile: its nodes change without a drain. */
    drain: boolean;
    /** nginx's proxy_next_upstream_tries: past a whole batch refusing connections, to a serving node. */
    nextUpstreamTries: number;
    /** For each node (by index), the nodes of the previous batch it waits for. */
    after: number[][];
}

/** The plan of a stack: its app tier, batch size and gunicorn's graceful timeout. */
export function stackRolloutPlan(cfg: StackConfig): RolloutPlan {
    return rolloutPlan({ nodeCount: cfg.app.nodeCount, batchSize: cfg.app.rolloutBatchSize, gracefulTimeout: cfg.gunicorn.gracefulTimeout });
}

export function rolloutPlan(o: { nodeCount: number; batchSize: number; gracefulTimeout: number }): RolloutPlan {
    const gateTimeout = Math.max(60, o.gracefulTimeout + 30);
    return {
        gateTimeout,
        drainLeaseSeconds: gateTimeout + 90,
        drain: o.nodeCount > o.batchSize,
        // A node that is changing refuses connections: with a batch of b, b + 1 tries reach a serving node.
        nextUpstreamTries: Math.min(o.nodeCount, o.batchSize + 2),
        after: Array.from({ length: o.nodeCount }, (_, i) => {
            const start = i - (i % o.batchSize);
            return start >= o.batchSize ? Array.from({ length: o.batchSize }, (_, k) => start - o.batchSize + k) : [];
        }),
    };
}

export interface AppCommandOptions {
    /** Stage and validate only (gunicorn --check-config, systemd-analyze verify, smoke boot); switch nothing. */
    checkOnly?: boolean;
    /** No other node could take the traffic (a tier of one batch): change without draining. */
    noDrain?: boolean;
    app: string;
    release: string;
    user: string;
    module: string;
    bind: string;
    healthPath: string;
    workers: number;
    keep: number;
    gateTimeout: number;
}

/** On an app node: check (`checkOnly`) or roll the change (the bundle on stdin) and the release onto it. */
export function appCommand(o: AppCommandOptions): string {
    return hostctlCommand("app", {
        app: o.app,
        release: o.release,
        user: o.user,
        module: o.module,
        bind: o.bind,
        "health-path": o.healthPath,
        workers: o.workers,
        keep: o.keep,
        "gate-timeout": o.gateTimeout,
        "check-only": o.checkOnly,
        "no-drain": o.noDrain,
    });
}

export interface GateOptions {
    /** Host header to send (checking the site through nginx by its server name). */
    hostHeader?: string;
    /** Accept the site's own certificate (self-signed, or issued for the domain). */
    insecure?: boolean;
}

export function gateCommand(url: string, timeoutSeconds: number, o: GateOptions = {}): string {
    return hostctlCommand("gate", { url, timeout: timeoutSeconds, "host-header": o.hostHeader, insecure: o.insecure });
}

/** The site through an LB's own nginx: https on loopback, checked with the site's name as SNI and Host. */
export const siteThroughLbUrl = (healthPath: string) => `https://127.0.0.1${healthPath}`;

/**
 * On the load balancer, after a node passed its own gate: take it into rotation, check the LB
 * reaches its health endpoint, then the site through nginx, then wait until nginx counts the node
 * as alive again (it skips a node for fail_timeout after errors, such as the connections it refused
 * while it drained itself).
 */
export function admitCommand(o: { server: string; nodeHealthUrl: string; siteHost: string; healthPath: string }): string {
    return [
        hostctlCommand("upstream", { server: o.server }, ["undrain"]),
        gateCommand(o.nodeHealthUrl, 60),
        gateCommand(siteThroughLbUrl(o.healthPath), 60, { hostHeader: o.siteHost, insecure: true }),
        hostctlCommand("upstream", { server: o.server, "fail-timeout": FAIL_TIMEOUT_S }, ["settle"]),
    ].join(" && ");
}

/** One step of an nginx change on one load balancer. */
export interface LbNginxStep {
    /** Which LB (by index). */
    lb: number;
    /** The step's resource name suffix. */
    suffix: "nginx" | "nginx-finish";
    /** A pair's first pass: validate only while this LB holds the public address. */
    deferIfHolder: boolean;
    /** The steps (by index in the plan) this one waits for. */
    after: number[];
}

/**
 * The steps of an nginx change across the load balancers, in order. One LB: one step. A pair: which LB
 * holds the address is known only on the hosts (keepalived decides; the plan is made before), so the
 * first LB's step validates and, if it holds the address, stops there; the second LB changes; then
 * the first LB's finishing step switches it (the same bundle again; nothing to do if it changed
 * already). Either way the backup changes first, is checked answering, and the holder changes last,
 * never both at once; a change nginx refuses stops at the first LB's nginx -t with nothing switched.
 * The address stays where it is: a reload fails no request, moving the address would drop every
 * connection the holder has (docs/pair.md).
 */
export function lbRolloutSteps(lbCount: number): LbNginxStep[] {
    if (lbCount === 1) return [{ lb: 0, suffix: "nginx", deferIfHolder: false, after: [] }];
    if (lbCount !== 2) throw new Error(`internal: lbCount is 1 or 2, got ${lbCount}`);
    return [
        { lb: 0, suffix: "nginx", deferIfHolder: true, after: [] },
        { lb: 1, suffix: "nginx", deferIfHolder: false, after: [0] },
        { lb: 0, suffix: "nginx-finish", deferIfHolder: false, after: [1] },
    ];
}
