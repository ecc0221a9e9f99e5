/**
 * The pack as the Pulumi CLI runs it, minus the CLI: policy/ is started with the same entry point
 * the nodejs language host uses for a policy pack (@pulumi/pulumi/cmd/run-policy-pack, TypeScript
 * compiled by its ts-node, cwd = policy/), and the test talks to it over the analyzer gRPC
 * protocol the engine speaks. What is not covered: the engine's own choice of what to send.
 */
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { policies } from "../../policy/policies";
import { TYPES } from "../../policy/rules";

const EXPECTED = [
    ["no-world-open-ingress", "resource"],
    ["world-open-ingress-only-on-lb", "stack"],
    ["app-nodes-private", "resource"],
    ["public-addresses-only-on-lb", "stack"],
    ["explicit-security-groups", "resource"],
    ["security-groups-managed-by-stack", "stack"],
    ["production-stack", "stack"],
    ["image-pinned", "resource"],
];

describe("the exported policies", () => {
    it("are every rule, once each, all mandatory", () => {
        assert.deepEqual(
            policies.map(p => [p.name, "validateStack" in p ? "stack" : "resource"]),
            EXPECTED,
        );
        for (const p of policies) assert.equal(p.enforcementLevel, "mandatory", p.name);
        for (const p of policies) assert.ok(p.description.length > 20, p.name);
    });
});

// ---- the pack process -------------------------------------------------------------------------

const root = path.resolve(__dirname, "../..");
const policyDir = path.join(root, "policy");
// Load gRPC and the protocol from @pulumi/pulumi's own dependencies, as @pulumi/policy does.
const fromPulumi = createRequire(require.resolve("@pulumi/pulumi/proto/analyzer_grpc_pb"));
const grpc: any = fromPulumi("@grpc/grpc-js");
const services: any = fromPulumi("./analyzer_grpc_pb");
const messages: any = fromPulumi("./analyzer_pb");
const { Struct }: any = fromPulumi("google-protobuf/google/protobuf/struct_pb");

/** How Pulumi marks a value it does not know yet, on the wire. */
const UNKNOWN_ON_WIRE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
const STACK_NAME = "staging";
const urn = (type: string, name: string) => `urn:pulumi:${STACK_NAME}::pycluster::${type}::${name}`;

interface WireResource {
    type: string;
    name: string;
    props: Record<string, unknown>;
    ignoreChanges?: string[];
    propertyDependencies?: Record<string, string[]>;
}

function options(ignoreChanges: string[] = []): any {
    const opts = new messages.AnalyzerResourceOptions();
    opts.setIgnorechangesList(ignoreChanges);
    return opts;
}

function analyzeRequest(r: WireResource): any {
    const req = new messages.AnalyzeRequest();
    req.setType(r.type);
    req.setName(r.name);
    req.setUrn(urn(r.type, r.name));
    req.setProperties(Struct.fromJavaScript(r.props));
    req.setOptions(options(r.ignoreChanges));
    return req;
}

function stackResource(r: WireResource): any {
    const res = new messages.AnalyzerResource();
    res.setType(r.type);
    res.setName(r.name);
    res.setUrn(urn(r.type, r.name));
    res.setProperties(Struct.fromJavaScript(r.props));
    res.setOptions(options(r.ignoreChanges));
    for (const [prop, urns] of Object.entries(r.propertyDependencies ?? {})) {
        const deps = new messages.AnalyzerPropertyDependencies();
        deps.setUrnsList(urns);
        res.getPropertydependenciesMap().set(prop, deps);
    }
    return res;
}

interface Diagnostic {
    policy: string;
    /** The rule's message; the pack prefixes it with the policy's description and a newline. */
    message: string;
    level: "mandatory" | "advisory" | "other";
    urn: string;
}

function diagnostics(response: any): Diagnostic[] {
    return response.getDiagnosticsList().map((d: any) => ({
        policy: d.getPolicyname(),
        message: stripDescription(d.getPolicyname(), d.getMessage()),
        level: d.getEnforcementlevel() === messages.EnforcementLevel.MANDATORY
            ? "mandatory"
            : d.getEnforcementlevel() === messages.EnforcementLevel.ADVISORY ? "advisory" : "other",
        urn: d.getUrn(),
    }));
}

function stripDescription(policyName: string, message: string): string {
    const description = policies.find(p => p.name === policyName)?.description;
    assert.ok(description !== undefined && message.startsWith(`${description}\n`), `unexpected message: ${message}`);
    return message.slice(description.length + 1);
}

function call(client: any, method: string, request: any): Promise<any> {
    return new Promise((resolve, reject) => {
        client[method](request, (err: unknown, response: unknown) => (err ? reject(err) : resolve(response)));
    });
}

/** Starts policy/ like the language host does and resolves with the port it listens on. */
function startPack(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; stderr: () => string }> {
    const entry = require.resolve("@pulumi/pulumi/cmd/run-policy-pack");
    const child = spawn(process.execPath, [entry, "127.0.0.1:0", "."], {
        cwd: policyDir,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stderr!.on("data", chunk => (stderr += chunk));
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`policy pack did not start in 120 s:\n${stderr}`)), 120_000);
        child.stdout!.on("data", chunk => {
            stdout += chunk;
            const line = /^(\d+)\s*$/m.exec(stdout);
            if (line) {
                clearTimeout(timer);
                resolve({ child, port: Number(line[1]), stderr: () => stderr });
            }
        });
        child.on("exit", code => {
            clearTimeout(timer);
            reject(new Error(`policy pack exited with ${code} before listening:\n${stdout}\n${stderr}`));
        });
    });
}

describe("policy/index.ts run as a policy pack", { timeout: 180_000 }, () => {
    let pack: Awaited<ReturnType<typeof startPack>> | undefined;
    let client: any;

    before(async () => {
        pack = await startPack({
            // What the engine sets for a nodejs policy pack (PolicyAnalyzerOptions -> environment).
            PULUMI_NODEJS_STACK: STACK_NAME,
            PULUMI_NODEJS_PROJECT: "pycluster",
            PULUMI_CONFIG: JSON.stringify({ "pycluster:production": "true" }),
        });
        client = new services.AnalyzerClient(`127.0.0.1:${pack.port}`, grpc.credentials.createInsecure());
    });

    after(() => {
        client?.close();
        pack?.child.kill();
    });

    it("registers every policy as mandatory under the name pycluster", async () => {
        const Empty = services.AnalyzerService.getAnalyzerInfo.requestType;
        const info = await call(client, "getAnalyzerInfo", new Empty());
        assert.equal(info.getName(), "pycluster");
        assert.equal(info.getVersion(), "0.1.0");
        const registered = info.getPoliciesList().map((p: any) => [
            p.getName(),
            p.getPolicyType() === messages.PolicyType.POLICY_TYPE_STACK ? "stack" : "resource",
            p.getEnforcementlevel() === messages.EnforcementLevel.MANDATORY ? "mandatory" : "not mandatory",
        ]);
        assert.deepEqual(registered, EXPECTED.map(([name, kind]) => [name, kind, "mandatory"]));
    });

    it("reports a world-open rule as a mandatory violation", async () => {
        const rule = { type: TYPES.secGroupRule, name: "app-all", props: { direction: "ingress", remoteIpPrefix: "0.0.0.0/0" } };
        const found = diagnostics(await call(client, "analyze", analyzeRequest(rule)));
        assert.deepEqual(found, [{
            policy: "no-world-open-ingress",
            message: 'Security group rule "app-all" opens every protocol and port to 0.0.0.0/0: only TCP 80 and 443 ' +
                "may be open to the world, and only on the load balancer's group; give it a remoteIpPrefix or a remoteGroupId.",
            level: "mandatory",
            urn: "", // a resource policy's finding is attached to the resource by the engine
        }]);
    });

    it("reads ignoreChanges from the resource options and copes with unknown inputs", async () => {
        const instance = {
            type: TYPES.instance,
            name: "app-0",
            props: { name: "pycluster-staging-app-0", imageName: "Debian 12", flavorName: "b3-8", networks: [{ port: UNKNOWN_ON_WIRE }] },
        };
        assert.deepEqual(diagnostics(await call(client, "analyze", analyzeRequest({ ...instance, ignoreChanges: ["imageName"] }))), []);
        assert.deepEqual(diagnostics(await call(client, "analyze", analyzeRequest(instance))).map(d => [d.policy, d.level]), [
            ["image-pinned", "mandatory"],
        ]);
    });

    it("follows dependencies across the stack and reads the stack name and pycluster:production", async () => {
        const lb = { type: TYPES.secGroup, name: "lb", props: { name: "pycluster-staging-lb", id: UNKNOWN_ON_WIRE } };
        const app = { type: TYPES.secGroup, name: "app", props: { name: "pycluster-staging-app", id: UNKNOWN_ON_WIRE } };
        const https = {
            type: TYPES.secGroupRule,
            name: "app-https",
            props: { direction: "ingress", protocol: "tcp", portRangeMin: 443, portRangeMax: 443, remoteIpPrefix: "0.0.0.0/0", securityGroupId: UNKNOWN_ON_WIRE },
            propertyDependencies: { securityGroupId: [urn(TYPES.secGroup, "app")] },
        };
        const node = { type: TYPES.instance, name: "app-0", props: { name: "pycluster-staging-app-0", imageId: "img", networks: [{ port: UNKNOWN_ON_WIRE }] } };
        const cert = { type: TYPES.selfSignedCert, name: "lb-cert", props: { certPem: UNKNOWN_ON_WIRE } };
        const req = new messages.AnalyzeStackRequest();
        req.setResourcesList([lb, app, https, node, cert].map(stackResource));
        const found = diagnostics(await call(client, "analyzeStack", req));
        assert.deepEqual(found, [
            {
                policy: "world-open-ingress-only-on-lb",
                message: 'Security group rule "app-https" opens TCP port 443 to 0.0.0.0/0 on group "pycluster-staging-app": ' +
                    "world-open ingress is allowed only on the load balancer's group (name ending \"-lb\").",
                level: "mandatory",
                urn: urn(TYPES.secGroupRule, "app-https"),
            },
            {
                policy: "production-stack",
                message: 'Production stack "staging" has 1 app instance(s): at least 2 are required so one can fail or ' +
                    "roll out while the other serves (pycluster:appNodeCount).",
                level: "mandatory",
                urn: "",
            },
            {
                policy: "production-stack",
                message: 'Production stack "staging" uses the self-signed certificate "lb-cert": set pycluster:tlsMode ' +
                    "to letsencrypt or provided.",
                level: "mandatory",
                urn: urn(TYPES.selfSignedCert, "lb-cert"),
            },
        ]);
        assert.doesNotMatch(pack!.stderr(), /error/i);
    });
});
