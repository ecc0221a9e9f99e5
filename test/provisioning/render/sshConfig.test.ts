/**
 * The operator's SSH files and commands: rendered, then read by the real
 * OpenSSH client (`ssh -G`, `ssh -v`, `ssh-keygen -F`) the way a pasted
 * command reads them, and the key setup command run in a throwaway HOME.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
    renderKnownHosts,
    renderSshConfig,
    SshAccessOptions,
    sshCommand,
    sshSetupCommand,
    sshTunnelCommand,
} from "../../../provisioning/render/sshConfig";
import { missingTools, sh, tempDir } from "../../support/hostTools";
import { pathWithoutPulumi, pulumiOutputStub } from "../../support/pulumiOutputStub";

const key = (n: number) => `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(n).repeat(43).slice(0, 43)}`;
const OPTIONS: SshAccessOptions = {
    stack: "pycluster-dev",
    user: "debian",
    keyFile: "~/.ssh/pycluster-dev",
    knownHostsFile: "~/.ssh/pycluster-dev.known_hosts",
    lb: { alias: "pycluster-dev-lb", address: "203.0.113.50", hostPublicKey: key(1) },
    privateNodes: [
        { alias: "pycluster-dev-app-0", address: "10.10.0.3", hostPublicKey: key(2) },
        { alias: "pycluster-dev-app-1", address: "10.10.0.4", hostPublicKey: key(3) },
        { alias: "pycluster-dev-mon", address: "10.10.0.127", hostPublicKey: `${key(4)} with a comment` },
    ],
};

/** Host blocks as { alias: { setting: value } }. */
function blocks(config: string): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    let current: Record<string, string> | undefined;
    for (const line of config.split("\n")) {
        const m = /^(\s*)(\S+) (.+)$/.exec(line);
        if (!m || line.trimStart().startsWith("#")) continue;
        if (m[2] === "Host") out[m[3]] = current = {};
        else {
            assert.ok(current && m[1].length > 0, `setting outside a Host block: ${line}`);
            current[m[2]] = m[3];
        }
    }
    return out;
}

test("a Host block per node: the LB at its public address, every other node through ProxyJump to the LB's alias", () => {
    const b = blocks(renderSshConfig(OPTIONS));
    assert.deepEqual(Object.keys(b), ["pycluster-dev-lb", "pycluster-dev-app-0", "pycluster-dev-app-1", "pycluster-dev-mon"]);
    const common = {
        User: "debian",
        IdentityFile: "~/.ssh/pycluster-dev",
        IdentitiesOnly: "yes",
        UserKnownHostsFile: "~/.ssh/pycluster-dev.known_hosts",
        StrictHostKeyChecking: "yes",
    };
    assert.deepEqual(b["pycluster-dev-lb"], { HostName: "203.0.113.50", ...common });
    assert.deepEqual(b["pycluster-dev-app-1"], { HostName: "10.10.0.4", ProxyJump: "pycluster-dev-lb", ...common });
    assert.deepEqual(b["pycluster-dev-mon"], { HostName: "10.10.0.127", ProxyJump: "pycluster-dev-lb", ...common });
    assert.doesNotMatch(renderSshConfig(OPTIONS), /PRIVATE KEY|AAAA/, "paths and addresses only");
});

test("known_hosts: one line per node, under the address ssh connects to, with the pinned key and the alias as comment", () => {
    const lines = renderKnownHosts(OPTIONS).split("\n");
    assert.match(lines[0], /^# Host keys of pycluster-dev/);
    assert.deepEqual(lines.slice(1), [
        `203.0.113.50 ${key(1)} pycluster-dev-lb`,
        `10.10.0.3 ${key(2)} pycluster-dev-app-0`,
        `10.10.0.4 ${key(3)} pycluster-dev-app-1`,
        `10.10.0.127 ${key(4)} pycluster-dev-mon`,
        "",
    ]);
});

test("refuses what would change the files' meaning instead of rendering it", () => {
    const node = (over: object) => ({ ...OPTIONS, privateNodes: [{ ...OPTIONS.privateNodes[0], ...over }] });
    const cases: [SshAccessOptions, RegExp][] = [
        [node({ alias: "app *" }), /alias "app \*"/],
        [node({ alias: "app-0\n    ProxyCommand evil" }), /alias/],
        [node({ address: "10.10.0.3,evil" }), /address of pycluster-dev-app-0/],
        [node({ alias: "pycluster-dev-lb" }), /two nodes have the alias pycluster-dev-lb/],
        [node({ address: "203.0.113.50" }), /two nodes have the address 203\.0\.113\.50/],
        [{ ...OPTIONS, keyFile: ".ssh/key" }, /key file ".ssh\/key" must be absolute or under ~\//],
        [{ ...OPTIONS, knownHostsFile: "/home/a b/kh" }, /known hosts file/],
        [{ ...OPTIONS, keyFile: "~/.ssh/%h" }, /key file/],
        [{ ...OPTIONS, user: "root user" }, /user/],
        [{ ...OPTIONS, stack: "dev\n#" }, /stack/],
    ];
    for (const [o, message] of cases) assert.throws(() => renderSshConfig(o), message);
    assert.throws(() => renderKnownHosts(node({ hostPublicKey: "-----BEGIN OPENSSH PRIVATE KEY-----" })), /host key of pycluster-dev-app-0 is not an OpenSSH public key/);
    assert.throws(() => renderKnownHosts(node({ hostPublicKey: "ssh-ed25519 AAAA\n10.0.0.9 ssh-ed25519 BBBB" })), /not an OpenSSH public key/);
});

test("commands: ssh -F <file> <alias>, ~/ left for the shell to expand, anything unusual quoted", () => {
    assert.equal(sshCommand("~/.ssh/pycluster-dev.config", "pycluster-dev-app-0"), "ssh -F ~/.ssh/pycluster-dev.config pycluster-dev-app-0");
    assert.equal(sshCommand("/var/lib/x y/c", "lb", ["-o", "LogLevel=ERROR"]), "ssh -F '/var/lib/x y/c' -o LogLevel=ERROR lb");
    assert.equal(sshTunnelCommand("~/.ssh/c", "pycluster-dev-lb", "10.10.0.127", 9090), "ssh -F ~/.ssh/c -N -L 9090:10.10.0.127:9090 pycluster-dev-lb");
    assert.throws(() => sshCommand("~/.ssh/c", "lb; rm -rf ~"), /alias/);
});

const SETUP = {
    pulumiStack: "dev",
    keyFile: "~/.ssh/pycluster-dev",
    configFile: "~/.ssh/pycluster-dev.config",
    knownHostsFile: "~/.ssh/pycluster-dev.known_hosts",
    outputs: { privateKey: "sshPrivateKey", config: "sshConfig", knownHosts: "sshKnownHosts" },
};

test("the key setup command writes the three files from the stack's outputs, the key 0600 even where one existed", () => {
    const outputs = { sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nk\n-----END OPENSSH PRIVATE KEY-----\n", sshConfig: renderSshConfig(OPTIONS), sshKnownHosts: renderKnownHosts(OPTIONS) };
    const stub = pulumiOutputStub("dev", outputs, ["sshPrivateKey"]);
    const home = tempDir("pyc-home-");
    try {
        const run = () => spawnSync("bash", ["-c", sshSetupCommand(SETUP)], { env: { PATH: `${stub.binDir}:${process.env.PATH}`, HOME: home }, encoding: "utf8" });
        const first = run();
        assert.equal(first.status, 0, first.stderr);
        const file = (name: string) => path.join(home, ".ssh", name);
        const mode = (name: string) => (fs.statSync(file(name)).mode & 0o777).toString(8);
        // As `pulumi stack output` prints a string: the value and a newline.
        assert.equal(fs.readFileSync(file("pycluster-dev"), "utf8"), outputs.sshPrivateKey + "\n");
        assert.equal(fs.readFileSync(file("pycluster-dev.config"), "utf8"), outputs.sshConfig + "\n");
        assert.equal(fs.readFileSync(file("pycluster-dev.known_hosts"), "utf8"), outputs.sshKnownHosts + "\n");
        assert.deepEqual([mode("pycluster-dev"), (fs.statSync(path.join(home, ".ssh")).mode & 0o777).toString(8)], ["600", "700"]);
        fs.chmodSync(file("pycluster-dev"), 0o644);
        assert.equal(run().status, 0);
        assert.equal(mode("pycluster-dev"), "600", "a key file that existed with a wider mode");
        // The command names its stack: another stack's outputs never land in this stack's files.
        const other = spawnSync("bash", ["-c", sshSetupCommand({ ...SETUP, pulumiStack: "prod" })], { env: { PATH: `${stub.binDir}:${process.env.PATH}`, HOME: home }, encoding: "utf8" });
        assert.notEqual(other.status, 0);
        assert.match(other.stderr, /no stack named 'prod'/);
    } finally {
        stub.remove();
        fs.rmSync(home, { recursive: true, force: true });
    }
    assert.doesNotMatch(sshSetupCommand(SETUP), /BEGIN|PRIVATE KEY-/, "the command line holds no key");
});

test("the key setup command works where the CLI is only the project's npm launcher (`npx pulumi`, as the README installs it), in bash and sh", () => {
    const outputs = { sshPrivateKey: "k\n", sshConfig: renderSshConfig(OPTIONS), sshKnownHosts: renderKnownHosts(OPTIONS) };
    const stub = pulumiOutputStub("dev", outputs, ["sshPrivateKey"]);
    const home = tempDir("pyc-home-");
    try {
        // The machine's CA for the npm registry (a proxy's, here), as a user's shell has it; one try: without
        // them npm retried the registry for 70 s before the "elsewhere" case below failed.
        const trust = process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {};
        const env = { PATH: pathWithoutPulumi(), HOME: home, npm_config_fetch_retries: "0", ...trust };
        assert.notEqual(spawnSync("sh", ["-c", "command -v pulumi"], { env }).status, 0, "a pulumi on PATH would prove nothing here");
        for (const shell of ["bash", "sh"]) {
            fs.rmSync(path.join(home, ".ssh"), { recursive: true, force: true });
            const r = spawnSync(shell, ["-c", sshSetupCommand(SETUP)], { env, cwd: stub.projectDir, encoding: "utf8" });
            assert.equal(r.status, 0, `${shell}: ${r.stderr}`);
            assert.equal(fs.readFileSync(path.join(home, ".ssh", "pycluster-dev.known_hosts"), "utf8"), outputs.sshKnownHosts + "\n");
            assert.equal((fs.statSync(path.join(home, ".ssh", "pycluster-dev")).mode & 0o777).toString(8), "600");
        }
        // Outside the project there is no launcher: it fails instead of fetching one.
        fs.rmSync(path.join(home, ".ssh"), { recursive: true, force: true });
        const elsewhere = spawnSync("bash", ["-c", sshSetupCommand(SETUP)], { env, cwd: home, encoding: "utf8" });
        assert.notEqual(elsewhere.status, 0);
        const key = path.join(home, ".ssh", "pycluster-dev");
        assert.equal(fs.existsSync(key) ? fs.readFileSync(key, "utf8") : "", "", `no pulumi ran: ${elsewhere.stderr}`);
    } finally {
        stub.remove();
        fs.rmSync(home, { recursive: true, force: true });
    }
});

const openssh = () => missingTools(["openssh-client"]);

test("the real ssh reads each Host block as meant (ssh -G)", { skip: openssh() }, () => {
    const dir = tempDir("pyc-sshcfg-");
    const o = { ...OPTIONS, keyFile: path.join(dir, "key"), knownHostsFile: path.join(dir, "known_hosts") };
    fs.writeFileSync(path.join(dir, "config"), renderSshConfig(o));
    const effective = (alias: string) => {
        const r = sh("ssh", ["-G", "-F", path.join(dir, "config"), alias]);
        assert.equal(r.code, 0, r.output);
        const seen: Record<string, string[]> = {};
        for (const line of r.output.trim().split("\n")) {
            const [k, ...v] = line.split(" ");
            (seen[k] ??= []).push(v.join(" "));
        }
        return (k: string) => seen[k]?.join(",");
    };
    for (const n of [o.lb, ...o.privateNodes]) {
        const get = effective(n.alias);
        assert.equal(get("hostname"), n.address, n.alias);
        assert.equal(get("user"), "debian");
        assert.equal(get("identityfile"), o.keyFile, "the stack's key and no default key");
        assert.equal(get("identitiesonly"), "yes");
        assert.equal(get("stricthostkeychecking"), "true");
        assert.equal(get("userknownhostsfile"), o.knownHostsFile);
        assert.equal(get("proxyjump"), n === o.lb ? undefined : o.lb.alias, n.alias);
    }
    fs.rmSync(dir, { recursive: true, force: true });
});

test("the real ssh hands the same -F to the ProxyJump connection, so the jump reads this file too", { skip: openssh() }, () => {
    const dir = tempDir("pyc-sshcfg-");
    const config = path.join(dir, "config");
    // Nothing answers SSH on this address; only the jump's command line is looked at.
    fs.writeFileSync(config, renderSshConfig({ ...OPTIONS, lb: { ...OPTIONS.lb, address: "127.0.0.1" }, keyFile: path.join(dir, "key"), knownHostsFile: path.join(dir, "kh") }));
    const r = spawnSync("ssh", ["-v", "-F", config, "-o", "ConnectTimeout=5", "pycluster-dev-app-0", "true"], { encoding: "utf8", timeout: 30_000, env: { ...process.env, SSH_AUTH_SOCK: "" } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, new RegExp(`Executing proxy command: exec ssh -F ${config.replace(/[.]/g, "\\.")} .*-W '\\[10\\.10\\.0\\.3\\]:22' pycluster-dev-lb`));
    assert.match(r.stderr, /Applying options for pycluster-dev-lb/, "the jump reads the LB's block of the same file");
    fs.rmSync(dir, { recursive: true, force: true });
});

test("ssh-keygen finds each node's real key under its address in the rendered known_hosts", { skip: openssh() }, () => {
    const dir = tempDir("pyc-kh-");
    const realKey = (name: string) => {
        sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path.join(dir, name)]);
        return fs.readFileSync(path.join(dir, `${name}.pub`), "utf8").trim();
    };
    const o = { ...OPTIONS, lb: { ...OPTIONS.lb, hostPublicKey: realKey("lb") }, privateNodes: OPTIONS.privateNodes.map(n => ({ ...n, hostPublicKey: realKey(n.alias) })) };
    const file = path.join(dir, "known_hosts");
    fs.writeFileSync(file, renderKnownHosts(o));
    for (const n of [o.lb, ...o.privateNodes]) {
        const r = sh("ssh-keygen", ["-F", n.address, "-f", file]);
        assert.equal(r.code, 0, `${n.alias}: ${r.output}`);
        const found = r.output.split("\n").filter(l => l && !l.startsWith("#"));
        assert.deepEqual(found, [`${n.address} ${n.hostPublicKey} ${n.alias}`]);
    }
    assert.notEqual(sh("ssh-keygen", ["-F", "10.10.0.99", "-f", file]).code, 0, "an address of no node is unknown");
    // Every line parses as a key: one fingerprint per node.
    assert.equal(sh("ssh-keygen", ["-l", "-f", file]).output.trim().split("\n").length, 4);
    fs.rmSync(dir, { recursive: true, force: true });
});
