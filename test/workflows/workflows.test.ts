/**
 * The CI workflows: valid for GitHub (action-validator, GitHub's own schema) and saying what the
 * project needs: previews of every stack on pull requests, ordered and gated deployments on main,
 * the policy pack on every Pulumi command, credentials only from repository secrets.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";

const root = path.resolve(__dirname, "../..");
const workflowsDir = path.join(root, ".github", "workflows");
const PREVIEW = path.join(workflowsDir, "preview.yml");
const DEPLOY = path.join(workflowsDir, "deploy.yml");

const STACKS = ["dev", "staging", "prod"];

/** Every secret a Pulumi step needs, passed under its own name. */
const CLOUD_SECRETS = [
    "OVH_ENDPOINT",
    "OVH_APPLICATION_KEY",
    "OVH_APPLICATION_SECRET",
    "OVH_CONSUMER_KEY",
    "OVH_CLOUD_PROJECT_SERVICE",
    "OS_USERNAME",
    "OS_PASSWORD",
    "PULUMI_BACKEND_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "PULUMI_CONFIG_PASSPHRASE",
];

interface Step {
    name?: string;
    uses?: string;
    run?: string;
    with?: Record<string, unknown>;
    env?: Record<string, unknown>;
}

interface Job {
    needs?: string | string[];
    environment?: string | { name: string };
    concurrency?: string | { group: string; "cancel-in-progress"?: boolean | string };
    permissions?: unknown;
    strategy?: { matrix?: Record<string, unknown> };
    steps?: Step[];
}

interface Workflow {
    on: Record<string, any>;
    permissions?: Record<string, string>;
    jobs: Record<string, Job>;
}

function load(file: string): { text: string; workflow: Workflow } {
    const text = fs.readFileSync(file, "utf8");
    return { text, workflow: parse(text) as Workflow };
}

/** `npx action-validator <file>`: GitHub's workflow schema, run from the repository top. */
function validate(file: string): { status: number | null; output: string } {
    const result = spawnSync("npx", ["--no", "action-validator", file], { cwd: root, encoding: "utf8" });
    if (result.error) throw result.error;
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const pulumiSteps = (job: Job) => (job.steps ?? []).filter(s => s.uses?.startsWith("pulumi/actions"));
const needsOf = (job: Job) => (job.needs === undefined ? [] : ([] as string[]).concat(job.needs));
const runs = (job: Job) => (job.steps ?? []).map(s => s.run?.trim()).filter((r): r is string => r !== undefined);

/** Jobs `name` depends on, directly or not. */
function ancestors(workflow: Workflow, name: string, seen = new Set<string>()): Set<string> {
    for (const parent of needsOf(workflow.jobs[name])) {
        if (!seen.has(parent)) {
            seen.add(parent);
            ancestors(workflow, parent, seen);
        }
    }
    return seen;
}

/** The one job of `workflow` whose Pulumi step targets `stack` (deploy.yml: one job per stack). */
function jobForStack(workflow: Workflow, stack: string): [string, Job] {
    const found = Object.entries(workflow.jobs).filter(([, job]) =>
        pulumiSteps(job).some(s => s.with?.["stack-name"] === stack));
    assert.equal(found.length, 1, `exactly one job deploys ${stack}`);
    return found[0];
}

/** Every string in a parsed YAML document, with its path. */
function strings(value: unknown, at = ""): [string, string][] {
    if (typeof value === "string") return [[at, value]];
    if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, `${at}[${i}]`));
    if (value !== null && typeof value === "object") {
        return Object.entries(value).flatMap(([k, v]) => strings(v, at ? `${at}.${k}` : k));
    }
    return [];
}

const preview = load(PREVIEW);
const deploy = load(DEPLOY);

describe("action-validator", () => {
    for (const file of [PREVIEW, DEPLOY]) {
        it(`accepts ${path.basename(file)}`, () => {
            const { status, output } = validate(file);
            assert.equal(status, 0, output);
        });
    }

    it("rejects a broken copy (the validator really runs)", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "workflows-"));
        try {
            const broken = path.join(dir, "deploy.yml");
            fs.writeFileSync(broken, deploy.text.replace(/^(\s+)runs-on:/m, "$1runs_on:"));
            const { status, output } = validate(broken);
            assert.notEqual(status, 0);
            assert.match(output, /runs_on/);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("preview.yml", () => {
    const { workflow } = preview;

    it("runs on pull requests only, and may comment on them", () => {
        assert.deepEqual(Object.keys(workflow.on), ["pull_request"]);
        assert.deepEqual(workflow.permissions, { contents: "read", "pull-requests": "write" });
        for (const [name, job] of Object.entries(workflow.jobs)) assert.equal(job.permissions, undefined, name);
    });

    it("previews exactly dev, staging and prod", () => {
        const matrixJobs = Object.values(workflow.jobs).filter(job => pulumiSteps(job).length > 0);
        assert.equal(matrixJobs.length, 1);
        assert.deepEqual(matrixJobs[0].strategy?.matrix?.stack, STACKS);
    });

    it("uses pulumi/actions preview with the policy pack and a PR comment", () => {
        for (const job of Object.values(workflow.jobs)) {
            for (const step of pulumiSteps(job)) {
                assert.equal(step.uses, "pulumi/actions@v6");
                assert.equal(step.with?.command, "preview");
                assert.equal(step.with?.["stack-name"], "${{ matrix.stack }}");
                assert.equal(step.with?.policyPacks, "policy");
                assert.equal(step.with?.["work-dir"], ".");
                assert.equal(step.with?.["comment-on-pr"], true);
            }
        }
    });
});

describe("deploy.yml", () => {
    const { workflow } = deploy;

    it("runs on pushes to main only, with read-only repository access", () => {
        assert.deepEqual(Object.keys(workflow.on), ["push"]);
        assert.deepEqual(workflow.on.push, { branches: ["main"] });
        assert.deepEqual(workflow.permissions, { contents: "read" });
        for (const [name, job] of Object.entries(workflow.jobs)) assert.equal(job.permissions, undefined, name);
    });

    it("uses pulumi/actions up with the policy pack for each stack", () => {
        for (const stack of STACKS) {
            const [, job] = jobForStack(workflow, stack);
            const steps = pulumiSteps(job);
            assert.equal(steps.length, 1);
            assert.equal(steps[0].uses, "pulumi/actions@v6");
            assert.equal(steps[0].with?.command, "up");
            assert.equal(steps[0].with?.policyPacks, "policy");
            assert.equal(steps[0].with?.["work-dir"], ".");
        }
    });

    it("deploys dev, then staging, then prod", () => {
        const [dev] = jobForStack(workflow, "dev");
        const [staging, stagingJob] = jobForStack(workflow, "staging");
        const [, prodJob] = jobForStack(workflow, "prod");
        assert.ok(needsOf(stagingJob).includes(dev), "staging needs dev");
        assert.ok(needsOf(prodJob).includes(staging), "prod needs staging");
    });

    it("gates prod behind the production environment, and only prod", () => {
        for (const stack of STACKS) {
            const [, job] = jobForStack(workflow, stack);
            const environment = typeof job.environment === "object" ? job.environment.name : job.environment;
            assert.equal(environment, stack === "prod" ? "production" : undefined, stack);
        }
    });

    it("serialises each stack in its own never-cancelled concurrency group", () => {
        for (const stack of STACKS) {
            const [, job] = jobForStack(workflow, stack);
            assert.ok(typeof job.concurrency === "object", `${stack} has a concurrency block`);
            assert.equal(job.concurrency.group, `pulumi-${stack}`);
            assert.equal(job.concurrency["cancel-in-progress"], false);
        }
    });

    it("runs npm ci and npm test before any up", () => {
        for (const stack of STACKS) {
            const [name] = jobForStack(workflow, stack);
            const tested = [...ancestors(workflow, name)].some(parent => {
                const commands = runs(workflow.jobs[parent]);
                const ci = commands.indexOf("npm ci");
                return ci >= 0 && commands.indexOf("npm test") > ci;
            });
            assert.ok(tested, `${stack} runs after a job that ran npm ci then npm test`);
        }
    });
});

describe("both workflows", () => {
    for (const { text, workflow } of [preview, deploy]) {
        const file = workflow === preview.workflow ? "preview.yml" : "deploy.yml";

        it(`${file}: install with npm ci on Node 20 (npm cache) before running Pulumi`, () => {
            for (const [name, job] of Object.entries(workflow.jobs)) {
                const steps = job.steps ?? [];
                const setup = steps.find(s => s.uses?.startsWith("actions/setup-node"));
                assert.ok(setup, `${name} sets up node`);
                assert.equal(String(setup.with?.["node-version"]), "20", name);
                assert.equal(setup.with?.cache, "npm", name);
                const ci = steps.findIndex(s => s.run?.trim() === "npm ci");
                const pulumi = steps.findIndex(s => s.uses?.startsWith("pulumi/actions"));
                assert.ok(ci >= 0, `${name} runs npm ci`);
                if (pulumi >= 0) assert.ok(ci < pulumi, `${name} installs before Pulumi runs`);
            }
        });

        it(`${file}: run Pulumi only through pulumi/actions`, () => {
            for (const [name, job] of Object.entries(workflow.jobs)) {
                for (const command of runs(job)) assert.doesNotMatch(command, /\bpulumi\s/, name);
            }
        });

        it(`${file}: pass every credential from repository secrets, under its own name`, () => {
            for (const job of Object.values(workflow.jobs)) {
                for (const step of pulumiSteps(job)) {
                    for (const secret of CLOUD_SECRETS) {
                        assert.equal(step.env?.[secret], `\${{ secrets.${secret} }}`, `${step.name}: ${secret}`);
                    }
                }
            }
        });

        it(`${file}: reference secrets only as \${{ secrets.X }}, with no literal credentials`, () => {
            for (const [at, value] of strings(workflow)) {
                if (/secrets\./.test(value)) {
                    assert.match(value, /^\$\{\{ secrets\.[A-Z][A-Z0-9_]* \}\}$/, `${at} uses a secret inside an expression`);
                }
                const key = at.split(".").pop() ?? "";
                if (/KEY|SECRET|PASSWORD|PASSPHRASE|TOKEN|USERNAME|BACKEND_URL|ENDPOINT|SERVICE/.test(key)) {
                    assert.match(value, /^\$\{\{ secrets\.[A-Z][A-Z0-9_]* \}\}$/, `${at} comes from a secret`);
                }
            }
            assert.doesNotMatch(text, /AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|s3:\/\/[a-z0-9]/);
        });
    }

    it("name only stacks that have a Pulumi.<stack>.yaml at the repository top", () => {
        const named = new Set<string>();
        for (const { workflow } of [preview, deploy]) {
            for (const job of Object.values(workflow.jobs)) {
                const matrixStacks = job.strategy?.matrix?.stack;
                if (Array.isArray(matrixStacks)) matrixStacks.forEach(s => named.add(String(s)));
                for (const step of pulumiSteps(job)) {
                    const stack = String(step.with?.["stack-name"]);
                    if (!stack.includes("${{")) named.add(stack);
                }
            }
        }
        assert.deepEqual([...named].sort(), [...STACKS].sort());
        const missing = [...named].filter(stack => !fs.existsSync(path.join(root, `Pulumi.${stack}.yaml`)));
        assert.deepEqual(missing, [], `missing stack files: ${missing.map(s => `Pulumi.${s}.yaml`).join(", ")}`);
    });
});
