/**
 * The one entry point that turns a stack's raw configuration into typed,
 * derived, validated settings. Each section reads its own keys (config/access,
 * platform, network, app, sizing, gunicorn, loadBalancer, tls, monitoring)
 * through one Reader, which collects every problem; if there is any, nothing
 * is returned and ConfigError lists them all, each naming the key, the value
 * and the fix. Pure: the file system is asked through ctx.files, the
 * environment is ctx.env; config/read.ts feeds it from the Pulumi runtime.
 */
import { isProductionStack, MIN_PRODUCTION_APP_NODES, stackNameClash } from "../lib/conventions";
import { readAccess } from "./access";
import { readApp } from "./app";
import { readGunicorn } from "./gunicorn";
import { readLbCount, readLoadBalancer, readStaticFiles } from "./loadBalancer";
import { readMonitoring } from "./monitoring";
import { readNetwork, readSshSources } from "./network";
import { readFlavor, readPlatform } from "./platform";
import { LB_STATUS_PORT } from "./ports";
import { ConfigError, Reader } from "./reader";
import { checkCapacity, checkRates, kernelSettings, readSizing } from "./sizing";
import { readTls } from "./tls";
import type { ParseContext, RawConfig, StackConfig } from "./types";

/** The settings, or a ConfigError with every problem. `read` collects the keys looked at (for the declarations test). */
export function parseStackConfig(raw: RawConfig, ctx: ParseContext, read?: Set<string>): StackConfig {
    const r = new Reader(raw, ctx, read);
    const { project } = ctx.declarations;
    checkKeysAndStack(r, raw, ctx);

    const access = readAccess(r);
    const platform = readPlatform(r);
    const production = isProductionStack(ctx.stack, r.boolean("production"));
    const nodeCount = r.integer("appNodeCount", 1, 200);
    if (production && nodeCount < MIN_PRODUCTION_APP_NODES) {
        r.fail("appNodeCount", nodeCount, `a production stack needs at least ${MIN_PRODUCTION_APP_NODES} app nodes, so one can fail or be updated while the other serves`);
    }
    const monitoringNode = r.boolean("monitoringNode");
    const lbCount = readLbCount(r);
    const network = readNetwork(r, { appNodes: nodeCount, monitoringNode, lbCount });
    const sshSources = readSshSources(r, network.cidr);
    const lbHost = readFlavor(r, "lbFlavor", "lbVcpus");
    const appHost = readFlavor(r, "appFlavor", "appVcpus");
    const app = readApp(r, ctx, { nodeCount, production });
    const sizing = readSizing(r, { lbVcpus: lbHost.vcpus, appVcpus: appHost.vcpus, appNodes: nodeCount, kind: app.kind });
    const lb = readLoadBalancer(r);
    const gunicorn = readGunicorn(r, lb.upstreamKeepaliveTimeout, app.kind);
    const tls = readTls(r, { domain: lb.domain, production });
    const staticFiles = readStaticFiles(r, ctx, app.dir);
    const monitoring = readMonitoring(r, { monitoringNode, nodeIp: network.plan?.monitoringIp, proxyReadTimeout: lb.proxyReadTimeout });
    const kernel = kernelSettings(sizing, gunicorn.backlog);
    const hosts = { lb: lbHost, app: appHost, appNodes: nodeCount };
    const capacity = checkCapacity(r, sizing, hosts, gunicorn.backlog);
    const { rates, overload } = checkRates(r, sizing, hosts, app.sample);

    if (r.problems.length > 0 || !network.plan) throw new ConfigError(r.problems, project, ctx.stack);
    return {
        project,
        stack: ctx.stack,
        production,
        targetConcurrency: sizing.targetConcurrency,
        ...access,
        network: network.plan,
        ssh: { user: platform.sshUser, ...sshSources },
        platform,
        lb: { count: lbCount, flavor: lbHost.flavor, vcpus: lbHost.vcpus, ...sizing.lb, listenBacklog: overload.listenBacklog, ...lb, statusPort: LB_STATUS_PORT, tls, staticFiles },
        app: {
            ...app,
            nodeCount,
            flavor: appHost.flavor,
            vcpus: appHost.vcpus,
        },
        gunicorn: { ...sizing.gunicorn, workerClass: app.kind === "wsgi" ? "gevent" : platform.asgiWorkerClass, ...gunicorn },
        monitoring,
        kernel,
        capacity,
        rates,
        overload,
        warnings: sizing.warnings,
    };
}

/** Keys nobody reads are almost always typos; a stack named like a role would blur every resource name. */
function checkKeysAndStack(r: Reader, raw: RawConfig, ctx: ParseContext): void {
    const { project, keys } = ctx.declarations;
    for (const key of Object.keys(raw.values)) {
        if (!(key in keys)) {
            const near = Object.keys(keys).find(k => k.toLowerCase() === key.toLowerCase());
            r.problem(`${project}:${key} is not a setting of this project${near ? ` (did you mean ${near}?)` : ""}. Remove it with: pulumi config rm ${key}`);
        }
    }
    // Resource names carry the stack and the role as dash-separated words (lib/conventions.ts).
    const clash = stackNameClash(ctx.stack);
    if (clash) {
        r.problem(`the stack name "${ctx.stack}" contains the word "${clash}", which marks a role in every resource name (the policy pack reads roles from names): choose another stack name`);
    }
}
