/**
 * npm run e2e [-- --keep]        npm run test:reliability (= --reliability: the failure tests only)
 *
 * Runs the end-to-end scenario on local hosts and tears everything down,
 * also on failure or Ctrl-C. With --keep the cluster stays up and one JSON
 * line describes it; `npm run e2e:down` removes it then.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const keep = process.argv.includes("--keep");
// The local hosts themselves (test/local), the cluster scenario, then the benchmark's smoke run
// (test/bench) and failures under load (test/reliability); those two stand up clusters of their
// own and are left out with --keep.
const only = process.argv.includes("--reliability");
const dirs = only
    ? [path.join(__dirname, "..", "reliability")]
    : [path.join(__dirname, "..", "local"), __dirname, ...(keep ? [] : [path.join(__dirname, "..", "bench"), path.join(__dirname, "..", "reliability")])];
const files = dirs.flatMap(dir =>
    fs
        .readdirSync(dir)
        .filter(f => f.endsWith(".e2e.test.ts"))
        .sort()
        .map(f => path.join(dir, f)),
);
const info = "/run/pycluster-e2e.json";
fs.rmSync(info, { force: true });
const result = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", ...files], {
    stdio: "inherit",
    env: { ...process.env, PYCLUSTER_E2E_KEEP: keep ? "1" : "" },
});
if (keep && result.status === 0 && fs.existsSync(info)) console.log(fs.readFileSync(info, "utf8"));
process.exit(result.status ?? 1);
