import { test } from "node:test";
import assert from "node:assert/strict";
import { admitCommand, appCommand, lbRolloutSteps, rolloutPlan } from "../../provisioning/rollout";

test("batches: each node waits for the whole previous batch; the first batch waits for nobody", () => {
    assert.deepEqual(rolloutPlan({ nodeCount: 5, batchSize: 2, gracefulTimeout: 30 }).after, [[], [], [0, 1], [0, 1], [2, 3]]);
    assert.deepEqual(rolloutPlan({ nodeCount: 3, batchSize: 1, gracefulTimeout: 30 }).after, [[], [0], [1]]);
});

test("a tier of one batch changes without a drain (nowhere else to send traffic); nginx tries past a whole batch", () => {
    const one = rolloutPlan({ nodeCount: 1, batchSize: 1, gracefulTimeout: 30 });
    assert.equal(one.drain, false);
    assert.equal(one.nextUpstreamTries, 1);
    const four = rolloutPlan({ nodeCount: 4, batchSize: 2, gracefulTimeout: 30 });
    assert.equal(four.drain, true);
    assert.equal(four.nextUpstreamTries, 4);
});

test("timings follow gunicorn's graceful timeout: the gate outlasts it, a drain's lease outlasts the gate", () => {
    assert.deepEqual(({ ...rolloutPlan({ nodeCount: 2, batchSize: 1, gracefulTimeout: 30 }), after: [] }), { gateTimeout: 60, drainLeaseSeconds: 150, drain: true, nextUpstreamTries: 2, after: [] });
    const slow = rolloutPlan({ nodeCount: 2, batchSize: 1, gracefulTimeout: 120 });
    assert.equal(slow.gateTimeout, 150);
    assert.equal(slow.drainLeaseSeconds, 240);
});

test("the node's and the load balancer's commands", () => {
    const o = { app: "webapp", release: "0123456789ab", user: "webapp", module: "app:application", bind: "10.0.0.3:8000", healthPath: "/healthz", workers: 5, keep: 5, gateTimeout: 60 };
    assert.match(appCommand({ ...o, checkOnly: true }), / app --app webapp .* --gate-timeout 60 --check-only$/);
    assert.match(appCommand({ ...o, noDrain: true }), / --no-drain$/);
    const admit = admitCommand({ server: "10.0.0.3:8000", nodeHealthUrl: "http://10.0.0.3:8000/healthz", siteHost: "www.example.com", healthPath: "/healthz" }).split(" && ");
    assert.deepEqual(admit.map(c => c.split(" ").slice(3, 5).join(" ")), ["upstream --server", "gate --url", "gate --url", "upstream --server"]);
    assert.match(admit[3], /--fail-timeout 10 settle$/);
});

test("an nginx change: one LB, one step; a pair, the holder of the address last (the first LB validates only if it holds it, and finishes after the second)", () => {
    assert.deepEqual(lbRolloutSteps(1), [{ lb: 0, suffix: "nginx", deferIfHolder: false, after: [] }]);
    const pair = lbRolloutSteps(2);
    assert.deepEqual(pair.map(s => [s.lb, s.suffix, s.deferIfHolder, s.after]), [
        [0, "nginx", true, []],
        [1, "nginx", false, [0]],
        [0, "nginx-finish", false, [1]],
    ]);
    // Each step waits for the one before: never two LBs switching at once.
    pair.forEach((s, k) => assert.deepEqual(s.after, k === 0 ? [] : [k - 1]));
    assert.throws(() => lbRolloutSteps(3), /lbCount is 1 or 2/);
});
