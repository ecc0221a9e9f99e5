import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { agentArchive, AGENT_PACKAGE_DIR, zipStored } from "../../provisioning/hostAgent";
import { hostctl, SYSTEM_PYTHON, sh, tempDir } from "../support/hostTools";

test("the agent is one zipapp holding every module of the package and the contract, the same bytes every build", () => {
    const a = agentArchive();
    const modules = fs.readdirSync(AGENT_PACKAGE_DIR).filter(f => f.endsWith(".py") || f.endsWith(".json"));
    assert.deepEqual(Object.keys(a.files).sort(), ["__main__.py", ...modules.map(m => `hostctl/${m}`)].sort());
    assert.ok(modules.includes("contract.json") && modules.includes("rollout.py"));
    const again = zipStored(Object.keys(a.files).map(n => [n, n === "__main__.py" ? Buffer.from("from hostctl.cli import main\n\nmain()\n") : fs.readFileSync(path.join(AGENT_PACKAGE_DIR, n.slice("hostctl/".length)))]));
    assert.ok(again.equals(a.bytes), "rebuilt from the same files: byte for byte the same");
});

test("python3 runs the zipapp, and Python's own zip reader finds it intact", () => {
    const help = hostctl(["--help"]);
    assert.equal(help.code, 0, help.output);
    assert.match(help.output, /\{wait-boot,packages,kernel,nginx,.*releases,app,.*upstream,gate,keepalived,vrrp-check,vrrp-notify\}/);
    const dir = tempDir("pyc-zip-");
    const file = path.join(dir, "a.zip");
    fs.writeFileSync(file, agentArchive().bytes);
    const check = sh(SYSTEM_PYTHON, ["-c", `import zipfile; z = zipfile.ZipFile(${JSON.stringify(file)}); print(z.testzip()); print(len(z.namelist()))`]);
    assert.equal(check.output.trim().split("\n")[0], "None", check.output);
});
