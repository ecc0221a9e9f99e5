/**
 * The program and hostctl agree: both load provisioning/host/hostctl/contract.json, hostctl builds its
 * parser from it, and every command line the program builds parses with hostctl's own parser.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AGENT, bundleDestinations, contractCommands, hostctlCommand, hostPath } from "../../provisioning/hostContract";
import { COMMAND, runProgram } from "../support/programHarness";
import { HOST_DIR, SYSTEM_PYTHON, sh } from "../support/hostTools";

/** Python with the agent's package importable; the code's stdout. */
function agentPython(code: string, stdin?: string): string {
    const r = sh(SYSTEM_PYTHON, ["-c", `import sys, json\nsys.path.insert(0, ${JSON.stringify(HOST_DIR)})\n${code}`], stdin);
    if (r.code !== 0) throw new Error(r.output);
    return r.output;
}

test("hostctl handles exactly the contract's subcommands, with exactly its flags", () => {
    const agent = JSON.parse(
        agentPython(`from hostctl import cli
p = cli.parser()
sub = next(a for a in p._actions if a.dest == "command")
out = {}
for name, s in sub.choices.items():
    out[name] = sorted(o[2:] for a in s._actions for o in a.option_strings if o.startswith("--") and o != "--help")
print(json.dumps({"parser": out, "handlers": sorted(cli.HANDLERS)}))`),
    );
    assert.deepEqual(agent.parser, contractCommands());
    assert.deepEqual(agent.handlers, Object.keys(contractCommands()).sort());
});

test("every hostctl command line the program builds, for every stack, parses with hostctl's own parser", async () => {
    const lines = new Set<string>();
    for (const stack of ["dev", "prod", "e2e"]) {
        const run = await runProgram({ stack, set: stack === "dev" ? { staticUrlPath: "/static/", staticDir: "static" } : {} });
        for (const c of run.byType(COMMAND)) {
            for (const part of String(c.inputs.create).replace(/ # change [0-9a-f]+$/, "").split(" && ")) {
                if (part.startsWith(`sudo python3 ${AGENT.file} `)) lines.add(part);
            }
        }
    }
    assert.ok(lines.size >= 12, `${lines.size} distinct command lines`);
    const parsed = JSON.parse(
        agentPython(
            `import shlex
from hostctl import cli
out = []
for line in sys.stdin.read().splitlines():
    argv = shlex.split(line)[3:]
    out.append(cli.parser().parse_args(argv).command)
print(json.dumps(out))`,
            [...lines].join("\n"),
        ),
    );
    assert.equal(parsed.length, lines.size);
    const used = new Set(parsed);
    for (const sub of ["wait-boot", "packages", "kernel", "nginx", "monitoring", "release", "app", "upstream", "gate", "static", "letsencrypt"]) assert.ok(used.has(sub), `${sub} is built by the program`);
});

test("both sides fill the contract's paths the same way", () => {
    const values = { app: "webapp", release: "0123456789ab", domain: "www.example.com" };
    const names = ["releaseArchive", "staticArchive", "appCurrent", "appPython", "appConfig", "appEnv", "appUnit", "staticRoot", "acmeWebroot", "letsencryptLive", "nginxSiteConf"] as const;
    const fromPython = JSON.parse(agentPython(`from hostctl.contract import path\nprint(json.dumps({n: path(n, app="webapp", release="0123456789ab", domain="www.example.com") for n in ${JSON.stringify(names)}}))`));
    assert.deepEqual(fromPython, Object.fromEntries(names.map(n => [n, hostPath(n, values)])));
    const kernel = JSON.parse(agentPython(`from hostctl.kernel import KERNEL_FILES\nprint(json.dumps(KERNEL_FILES))`));
    assert.deepEqual(kernel, bundleDestinations("kernel"));
    const monitoring = JSON.parse(agentPython(`from hostctl.monitoring import MONITORING_FILES\nprint(json.dumps({k: v["path"] for k, v in MONITORING_FILES.items()}))`));
    assert.deepEqual(monitoring, bundleDestinations("monitoring"));
});

test("the program cannot build a command line the agent would refuse", () => {
    assert.throws(() => hostctlCommand("frobnicate"), /hostctl has no subcommand frobnicate/);
    assert.throws(() => hostctlCommand("release", { app: "a", id: "x", user: "u" }), /hostctl release has no flag --id/);
    assert.throws(() => hostctlCommand("release", { app: "a", user: "u" }), /hostctl release needs --release/);
    assert.throws(() => hostctlCommand("app", { app: "a", release: "r", user: "u", module: "m:a", bind: "b", "health-path": "/", workers: 2.5 }), /--workers takes a number/);
    assert.throws(() => hostctlCommand("upstream", { server: "x" }, ["explode"]), /action must be one of drain, undrain, expire, settle/);
    assert.throws(() => hostctlCommand("packages"), /needs at least one packages/);
    assert.throws(() => hostPath("appConfig"), /needs a value for \{app\}/);
    assert.equal(hostctlCommand("gate", { url: "http://10.0.0.3:8000/healthz", timeout: 60, insecure: true }), `sudo python3 ${AGENT.file} gate --url http://10.0.0.3:8000/healthz --timeout 60 --insecure`);
});
