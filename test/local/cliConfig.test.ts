import { test } from "node:test";
import assert from "node:assert/strict";
import { CliConfigError, cliStackConfig, loadProjectFile, ProjectFile } from "../../local/cliConfig";

/** A small project, declared the way Pulumi.yaml declares ours. */
const PROJECT: ProjectFile = {
    name: "demo",
    config: {
        size: { type: "integer", default: 2 },
        name: { type: "string", default: "" },
        enabled: { type: "boolean", default: false },
        cidrs: { type: "array", items: { type: "string" } },
        zones: { type: "array", items: { type: "string" }, default: ["a", "b"] },
        vlan: { type: "integer" },
        token: { type: "string", secret: true, default: "" },
        untyped: { default: "x" },
    },
};

const run = (stackFileText: string, o: Partial<Parameters<typeof cliStackConfig>[0]> = {}) =>
    cliStackConfig({ stack: "dev", project: PROJECT, stackFileText, ...o });

const BASE = "config:\n  demo:vlan: 110\n  cidrs: [203.0.113.7/32]\n";

test("project defaults arrive as values: numbers and booleans as text, lists as JSON, an empty default as \"\"", () => {
    const { config, secretKeys } = run(BASE);
    assert.deepEqual(config, {
        "demo:cidrs": '["203.0.113.7/32"]',
        "demo:enabled": "false",
        "demo:name": "",
        "demo:size": "2",
        "demo:token": "",
        "demo:untyped": "x",
        "demo:vlan": "110",
        "demo:zones": '["a","b"]',
    });
    assert.deepEqual(secretKeys, []);
});

test("the stack file and `config set` override defaults; keys may be written with or without the project", () => {
    const { config } = run("config:\n  vlan: 7\n  demo:size: 5\n  cidrs: [198.51.100.0/24]\n", { set: { name: "web" } });
    assert.equal(config["demo:vlan"], "7");
    assert.equal(config["demo:size"], "5");
    assert.equal(config["demo:name"], "web");
});

test("secure values and `config set --secret` are secrets", () => {
    const { config, secretKeys } = run(`${BASE}  demo:token:\n    secure: djE6c2VjcmV0\n`, { decrypt: c => Buffer.from(c, "base64").toString(), setSecret: { name: "hidden" } });
    assert.equal(config["demo:token"], "v1:secret");
    assert.deepEqual(secretKeys.sort(), ["demo:name", "demo:token"]);
});

test("a key declared secret must be encrypted", () => {
    assert.throws(() => run(BASE, { set: { token: "plain" } }), /^CliConfigError: Stack 'dev' with configuration key 'token' must be encrypted as it's secret$/);
});

test("missing keys without a default are listed as the CLI lists them", () => {
    assert.throws(() => run("config:\n  cidrs: [a]\n"), /^CliConfigError: Stack 'dev' is missing configuration value 'vlan'$/);
    assert.throws(() => run(""), /^CliConfigError: Stack 'dev' is missing configuration values 'cidrs' and 'vlan'$/);
    const three: ProjectFile = { name: "demo", config: { c: { type: "string" }, a: { type: "integer" }, b: { type: "boolean" } } };
    assert.throws(() => cliStackConfig({ stack: "dev", project: three, stackFileText: "" }), /missing configuration values 'a', 'b' and 'c'$/);
});

test("types are checked as Go's strconv.Atoi and the CLI's boolean/array rules do", () => {
    for (const ok of ["5", "+5", "-5", "007"]) assert.equal(run(BASE, { set: { size: ok } }).config["demo:size"], ok);
    for (const bad of ["5.0", " 5", "five", "", "9223372036854775808"]) {
        assert.throws(() => run(BASE, { set: { size: bad } }), /with configuration key 'size' must be of type 'integer'$/, JSON.stringify(bad));
    }
    assert.throws(() => run(BASE, { set: { enabled: "yes" } }), /key 'enabled' must be of type 'boolean'$/);
    assert.equal(run(BASE, { set: { enabled: "true" } }).config["demo:enabled"], "true");
    // `pulumi config set cidrs '["x"]'` stores a string: a list needs --path.
    assert.throws(() => run(BASE, { set: { cidrs: '["203.0.113.7/32"]' } }), /key 'cidrs' must be of type 'array<string>'$/);
    assert.equal(run(BASE, { setObject: { cidrs: ["203.0.113.7/32"] } }).config["demo:cidrs"], '["203.0.113.7/32"]');
    assert.throws(() => run("config:\n  vlan: 1\n  cidrs: [1, 2]\n"), /must be of type 'array<string>'$/);
});

test("keys the project does not declare pass through (the program flags them as typos)", () => {
    assert.equal(run(`${BASE}  demo:vlanID: 5\n`).config["demo:vlanID"], "5");
});

test("our Pulumi.yaml: every key the program may take from the environment defaults to \"\" (so the CLI requires nothing the environment gives)", () => {
    const project = loadProjectFile();
    for (const key of ["serviceName", "ovhEndpoint", "ovhApplicationKey", "ovhApplicationSecret", "ovhConsumerKey", "openstackAuthUrl", "openstackUserName", "openstackPassword"]) {
        assert.equal(project.config[key].default, "", key);
    }
    const { config } = cliStackConfig({ stack: "dev", project, stackFileText: "config:\n  pycluster:vlanId: 3\n  pycluster:adminCidrs: [203.0.113.7/32]\n" });
    assert.equal(config["pycluster:ovhApplicationKey"], "");
    assert.equal(config["pycluster:deployerCidrs"], "[]");
});

test("a CliConfigError is what the CLI prints, not a stack trace of the program", () => {
    let e: unknown;
    try {
        run("");
    } catch (err) {
        e = err;
    }
    assert.ok(e instanceof CliConfigError);
});
