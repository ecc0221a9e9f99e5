import { test } from "node:test";
import assert from "node:assert/strict";
import { capacityModel, overloadLimits, rateLoad, rateModel, rateShortfall } from "../../config/capacity";

const base = {
    lbWorkers: 2,
    lbWorkerConnections: 60000,
    lbWorkerOpenFiles: 60128,
    lbEphemeralPorts: 64511,
    appNodes: 2,
    appWorkersPerNode: 5,
    appWorkerConnections: 6000,
    appWorkerOpenFiles: 7024,
    appBacklog: 4096,
};

test("the ceiling is the smallest limit, and the model names it", () => {
    const m = capacityModel(base);
    assert.equal(m.ceiling, 60000);
    assert.match(m.binding.name, /nginx worker_connections|gunicorn worker_connections/);
    assert.equal(m.limits.find(l => l.name === "LB->app ephemeral ports")!.requests, 2 * 64511);
});

test("a proxied request costs nginx two connections", () => {
    const m = capacityModel({ ...base, lbWorkerConnections: 1024, lbWorkerOpenFiles: 2048 });
    assert.equal(m.ceiling, 1024);
    assert.equal(m.binding.name, "nginx worker_connections");
});

test("one app node behind one LB address is bound by ephemeral ports", () => {
    const m = capacityModel({ ...base, appNodes: 1, appWorkersPerNode: 40, appWorkerConnections: 5000, appWorkerOpenFiles: 6024, lbWorkers: 8 });
    assert.equal(m.binding.name, "LB->app ephemeral ports");
    assert.equal(m.ceiling, 64511);
});

test("uvicorn workers are bound by their open files", () => {
    const m = capacityModel({ ...base, appWorkerConnections: undefined, appWorkerOpenFiles: 1128 });
    assert.equal(m.binding.name, "app open files");
    assert.equal(m.ceiling, 2 * 5 * 1000);
});

const MEMORY_RATES = { lbBytesPerInFlight: 24 * 1024, appBytesPerInFlight: 15 * 1024, kernelBytesPerSocket: 3 * 1024 };

test("memory: each node's RAM over what a request costs there (the LB holds two sockets, an app node one)", () => {
    const m = capacityModel({ ...base, memory: { lbBytes: 8e9, appNodeBytes: 8e9, rates: MEMORY_RATES } });
    const lb = m.limits.find(l => l.name === "LB memory")!;
    assert.equal(lb.requests, Math.floor((0.75 * 8e9) / (24 * 1024 + 2 * 3 * 1024)));
    const app = m.limits.find(l => l.name === "app memory")!;
    assert.equal(app.requests, 2 * Math.floor((0.75 * 8e9) / (15 * 1024 + 3 * 1024)));
    const small = capacityModel({ ...base, memory: { lbBytes: 2e9, appNodeBytes: 8e9, rates: MEMORY_RATES } });
    assert.equal(small.binding.name, "LB memory", "a 2 GB load balancer cannot hold 60,000 requests");
    assert.match(small.binding.formula, /0.75 x 1907 MiB \/ \(nginx 24.0 KiB \+ 2 sockets x 3.0 KiB\) per request/);
    assert.ok(capacityModel(base).limits.every(l => !/memory/.test(l.name)), "no memory limit without the nodes' memory");
});

const RATES = { tlsHandshakesPerLbCore: 2000, proxiedRequestsPerLbCore: 10000 };
const rateBase = { lbVcpus: 2, appNodes: 2, appVcpus: 2, appWorkersPerNode: 5, appRequestsPerCore: 3000, rates: RATES };

test("rates: the LB's vCPUs times what a core handshakes or proxies; an app node uses min(workers, vCPUs) cores", () => {
    const m = rateModel(rateBase);
    assert.equal(m.newConnections.ceiling, 4000);
    assert.equal(m.newConnections.binding.name, "LB CPU: TLS handshakes");
    assert.equal(m.requests.limits.find(l => l.name === "LB CPU: proxying")!.perSecond, 20000);
    assert.equal(m.requests.ceiling, 12000, "2 nodes x 2 cores x 3000");
    assert.equal(m.requests.binding.name, "app CPU");
    assert.equal(m.appCoresPerNode, 2);
    assert.equal(rateModel({ ...rateBase, appWorkersPerNode: 1 }).requests.ceiling, 6000, "one worker is one process: one core");
    const unknown = rateModel({ ...rateBase, appRequestsPerCore: undefined });
    assert.equal(unknown.appRateKnown, false);
    assert.equal(unknown.requests.binding.name, "LB CPU: proxying", "an app nobody measured adds no limit");
});

test("the CPU targets need: handshakes for new connections, proxying for the other requests", () => {
    const load = rateLoad(rateBase, { requestsPerSecond: 5000, newConnectionsPerSecond: 1000 });
    assert.equal(load.lbCores, 1000 / 2000 + 4000 / 10000);
    assert.equal(load.appCoresPerNode, 5000 / 2 / 3000);
    assert.equal(rateLoad(rateBase, { requestsPerSecond: 0, newConnectionsPerSecond: 1000 }).requestsPerSecond, 1000, "every new connection carries a request");
});

test("a shortfall names the binding limit, the numbers and what would carry the target", () => {
    assert.equal(rateShortfall(rateBase, { requestsPerSecond: 0, newConnectionsPerSecond: 0 }, 1.2), undefined, "0 = not checked");
    assert.equal(rateShortfall(rateBase, { requestsPerSecond: 9000, newConnectionsPerSecond: 0 }, 1.2), undefined);
    const lb = rateShortfall(rateBase, { requestsPerSecond: 0, newConnectionsPerSecond: 3500 }, 1.2)!;
    assert.equal(lb.key, "targetNewConnectionsPerSecond");
    assert.match(lb.reason, /the load balancer's 2 vCPUs cannot carry it with 20% headroom: LB CPU: TLS handshakes 2.10 cores \(4200\/s at 2000 per core\)/);
    assert.match(lb.fix, /an lbFlavor with at least 3 vCPUs/);
    const app = rateShortfall(rateBase, { requestsPerSecond: 11000, newConnectionsPerSecond: 0 }, 1.2)!;
    assert.equal(app.key, "targetRequestsPerSecond");
    assert.match(app.reason, /app CPU: 13200 requests\/s over 2 nodes at 3000 per core need 2.20 cores per node, and a node uses at most min\(5 workers, 2 vCPUs\) = 2/);
    assert.match(app.fix, /at least 3 app nodes/);
    const proxy = rateShortfall({ ...rateBase, appRequestsPerCore: undefined }, { requestsPerSecond: 18000, newConnectionsPerSecond: 0 }, 1.2)!;
    assert.equal(proxy.key, "targetRequestsPerSecond");
    assert.match(proxy.reason, /proxying 2.16 cores/);
});

test("nginx's max_conns per app node is a limit of its own: the node's share, enforced by the LB", () => {
    const m = capacityModel({ ...base, appWorkerConnections: 19872, appWorkerOpenFiles: 20000, appNodeConnections: 26000 });
    const cap = m.limits.find(l => l.name === "nginx max_conns per app node")!;
    assert.equal(cap.requests, 2 * 26000);
    assert.equal(m.binding.name, "nginx max_conns per app node", "the workers may hold more than nginx gives them");
    assert.equal(m.ceiling, 52000);
    assert.ok(capacityModel(base).limits.every(l => !/max_conns/.test(l.name)), "no such limit where nginx sets no max_conns (seed, stock)");
});

test("overload limits: the LB's request ceiling (or the operator's), a node's capacity, a second of handshakes queued", () => {
    const rates = rateModel(rateBase);
    const o = overloadLimits({ rates, requestRateSetting: 0, appNodeConnections: 30000, lbWorkers: 2 });
    assert.equal(rates.requests.ceiling, 12000, "the app's CPU binds the model");
    assert.equal(o.requestRate, 20000, "but nginx's limit is the LB's own: an app change never reloads nginx");
    assert.equal(o.requestBurst, 20000, "one second's worth");
    const unknownApp = overloadLimits({ rates: rateModel({ ...rateBase, appRequestsPerCore: undefined }), requestRateSetting: 0, appNodeConnections: 30000, lbWorkers: 2 });
    assert.deepEqual(unknownApp, o, "another app (cost unknown): the same limits");
    assert.equal(o.perNodeConnections, 30000);
    assert.equal(o.listenBacklog, 2000, "a second of handshakes over 2 listening sockets");
    assert.equal(o.retryAfterSeconds, 1);
    assert.equal(overloadLimits({ rates, requestRateSetting: 500, appNodeConnections: 5000, lbWorkers: 13 }).requestRate, 500);
    const uvicorn = overloadLimits({ rates, requestRateSetting: 0, appNodeConnections: 5000, lbWorkers: 13 });
    assert.equal(uvicorn.perNodeConnections, 5000, "what sizing gives a node, whatever its workers");
    assert.equal(uvicorn.listenBacklog, Math.ceil(4000 / 13), "a second of handshakes over 13 sockets");
    const tiny = rateModel({ ...rateBase, lbVcpus: 1, rates: { ...RATES, tlsHandshakesPerLbCore: 100 } });
    assert.equal(overloadLimits({ rates: tiny, requestRateSetting: 0, appNodeConnections: 30000, lbWorkers: 4 }).listenBacklog, 128, "room for an ordinary burst");
});
