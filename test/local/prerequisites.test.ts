import { test } from "node:test";
import assert from "node:assert/strict";
import { LOCAL_TOOLS, MachineFacts, prerequisitePlan } from "../../local/prerequisites";

const debianRoot: MachineFacts = { platform: "linux", uid: 0, missing: [], hasAptGet: true, hasCgroups: true };
const tool = (command: string) => LOCAL_TOOLS.find(t => t.command === command)!;

test("a ready machine needs nothing", () => {
    assert.deepEqual(prerequisitePlan(debianRoot), { action: "ready" });
});

test("root on Debian: the missing tools are installed with apt, each with its reason", () => {
    const plan = prerequisitePlan({ ...debianRoot, missing: [tool("systemd-nspawn"), tool("mmdebstrap"), tool("apt-ftparchive"), tool("nft")] });
    assert.equal(plan.action, "install");
    if (plan.action !== "install") return;
    assert.deepEqual(plan.packages, ["systemd-container", "mmdebstrap", "apt-utils", "nftables"]);
    assert.match(plan.reasons[0], /^systemd-container: systemd-nspawn, runs each local host/);
});

test("not root: one sentence with the exact command, installing first when something is missing", () => {
    const plan = prerequisitePlan({ ...debianRoot, uid: 1000, missing: [tool("mmdebstrap")] });
    assert.deepEqual(plan, {
        action: "fail",
        message: "The local rehearsal needs root (network namespaces, mounts, cgroups): run `sudo apt-get install -y --no-install-recommends mmdebstrap && sudo npm run local -- up`.",
    });
    const nothingMissing = prerequisitePlan({ ...debianRoot, uid: 1000 });
    assert.equal(nothingMissing.action === "fail" && nothingMissing.message, "The local rehearsal needs root (network namespaces, mounts, cgroups): run `sudo npm run local -- up`.");
});

test("not Linux: says so and what to run instead", () => {
    const plan = prerequisitePlan({ platform: "darwin", uid: 501, missing: [], hasAptGet: false, hasCgroups: false });
    assert.equal(plan.action, "fail");
    assert.match(plan.action === "fail" ? plan.message : "", /needs a Linux machine \(this is darwin\): run it in a Debian 12 VM .*`npm install && npm run local -- up`/);
});

test("Linux without apt: names the tools and the Debian command as a pointer", () => {
    const plan = prerequisitePlan({ ...debianRoot, hasAptGet: false, missing: [tool("nft")] });
    assert.equal(plan.action === "fail" && plan.message, "The local rehearsal needs nft: install them with this machine's package manager (on Debian: `apt-get install -y --no-install-recommends nftables`), then run `npm run local -- up` again.");
});

test("no writable cgroups (an unprivileged container): refused before anything is installed", () => {
    const plan = prerequisitePlan({ ...debianRoot, hasCgroups: false, missing: [tool("nft")] });
    assert.equal(plan.action, "fail");
});
