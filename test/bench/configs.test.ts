import { test } from "node:test";
import assert from "node:assert/strict";
import { configPlan, loadFixtures } from "../../bench/lib/configs";
import { localStackConfig } from "../../local/stack";

test("generated on a pair: nginx is rendered for the LB that holds the address (its own status listener), not the first LB", () => {
    const cfg = localStackConfig({ stack: "bench", set: { lbCount: "2" } });
    const second = cfg.network.pair!.secondLbIp;
    const facts = { lbPublicIp: "198.19.0.10", lbPrivateIp: second, appIps: cfg.network.appIps, appVcpus: 2, kernelDefaults: {} };
    const site = (lbPrivateIp: string) => configPlan("generated", cfg, { ...facts, lbPrivateIp }, loadFixtures()).lb.files.find(f => f.path.endsWith("/site.conf"))!.content;
    assert.match(site(second), new RegExp(`listen ${second.replace(/\./g, "\\.")}:${cfg.lb.statusPort}\\b`));
    assert.doesNotMatch(site(second), new RegExp(`listen ${cfg.network.lbIp.replace(/\./g, "\\.")}:`));
    assert.match(site(cfg.network.lbIp), new RegExp(`listen ${cfg.network.lbIp.replace(/\./g, "\\.")}:${cfg.lb.statusPort}\\b`));
});
