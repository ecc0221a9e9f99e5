/** The pair's alerts (lbCount 2), tested by the real promtool: each fires in its situation only. */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { lbPairAlertRules, renderAlertRules } from "../../../provisioning/render/prometheus";
import { missingTools, sh, tempDir } from "../../support/hostTools";

const OPTIONS = { errorRatio: 0.05, latencyP95Seconds: 1, gunicornWorkers: 5, scrapeIntervalSeconds: 15 };
const lb1 = `pycluster_lb_vip_held{job="node",instance="10.0.0.2:9100",node="c-lb",role="lb"}`;
const lb2 = `pycluster_lb_vip_held{job="node",instance="10.0.0.125:9100",node="c-lb-2",role="lb"}`;

interface Case {
    name: string;
    series: [string, string][];
    /** At 5 minutes: which of the pair's alerts fire. */
    firing: string[];
}

const CASES: Case[] = [
    { name: "one LB holds the address", series: [[lb1, "1x40"], [lb2, "0x40"]], firing: [] },
    { name: "a failover: the address moves within a scrape", series: [[lb1, "1x10 0x30"], [lb2, "0x10 1x30"]], firing: [] },
    { name: "nobody holds it (both FAULT)", series: [[lb1, "1x4 0x36"], [lb2, "0x40"]], firing: ["LbAddressUnheld"] },
    { name: "nobody reports at all (both LBs down)", series: [[lb1, "1x4 stale"], [lb2, "0x4 stale"]], firing: ["LbAddressUnheld"] },
    { name: "both claim it (split brain)", series: [[lb1, "1x40"], [lb2, "0x4 1x36"]], firing: ["LbSplitBrain"] },
];

test("the pair's alerts are only in a pair's rules", () => {
    assert.doesNotMatch(renderAlertRules(OPTIONS), /LbSplitBrain|LbAddressUnheld/);
    assert.match(renderAlertRules({ ...OPTIONS, lbPair: true }), /LbSplitBrain[\s\S]*LbAddressUnheld|LbAddressUnheld[\s\S]*LbSplitBrain/);
});

test("promtool test rules: no holder and two holders fire, one holder and a failover do not", { skip: missingTools(["promtool"]) }, () => {
    const dir = tempDir("pyc-pair-rules-");
    fs.writeFileSync(path.join(dir, "rules.yml"), renderAlertRules({ ...OPTIONS, lbPair: true }));
    const rules = lbPairAlertRules(OPTIONS);
    const alerts = rules.map(r => r.alert);
    // As they fire: a split brain has 2 holders.
    const annotations = (alert: string) => {
        const a = rules.find(r => r.alert === alert)!.annotations;
        return { summary: a.summary.replace("{{ $value }}", "2"), description: a.description };
    };
    const doc = {
        rule_files: ["rules.yml"],
        evaluation_interval: "15s",
        tests: CASES.map(c => ({
            name: c.name,
            interval: "15s",
            input_series: c.series.map(([series, values]) => ({ series, values })),
            alert_rule_test: alerts.map(alert => ({
                eval_time: "5m",
                alertname: alert,
                exp_alerts: c.firing.includes(alert) ? [{ exp_labels: { severity: "critical" }, exp_annotations: annotations(alert) }] : [],
            })),
        })),
    };
    fs.writeFileSync(path.join(dir, "tests.yml"), stringify(doc));
    const r = sh("promtool", ["test", "rules", path.join(dir, "tests.yml")]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS/);
});
