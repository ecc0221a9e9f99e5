import { test } from "node:test";
import assert from "node:assert/strict";
import { capacityModel } from "../../config/capacity";

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
