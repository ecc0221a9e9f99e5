/**
 * The CI workflows: valid for GitHub (action-validator, GitHub's own schema) and saying what the
 * project needs: previews of dev and staging on pull requests, ordered deployments on main with
 * prod previewed before its approval, an SSH window for the hosted runner that is always closed,
 * the policy pack on every Pulumi command, credentials only from GitHub environments' secrets, and
 * the toolchain pinned (action majors, the Pulumi CLI of package.json, Node from .nvmrc).
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
/** The stacks previewed on pull requests: never one whose credentials reach production. */
const PR_STACKS = ["dev", "staging"];
/** The environment whose secrets each stack's `up` receives. */
const UP_ENVIRONMENT: Record<string, string> = { dev: "dev", staging: "staging", prod: "production" };

/** The latest major of each action used (their repositories' tags, summer 2026). */
const CURRENT_ACTIONS: Record<string, string> = {
    "actions/checkout": "v7",
    "actions/setup-node": "v7",
    "pulumi/actions": "v7",
};

/** Upper bounds for a job's timeout-minutes, by what it does. */
const TIMEOUT_LIMIT = { test: 30, preview: 20, up: 60 };

/** The Pulumi CLI version: the `pulumi` launcher in package.json installs that CLI. */
const packageJson = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const PULUMI_CLI: string = packageJson.devDependencies.pulumi;

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
    id?: string;
    name?: string;
    if?: string;
    uses?: string;
    run?: string;
    with?: Record<string, unknown>;
    env?: Record<string, unknown>;
    "timeout-minutes"?: number;
}

interface Job {
    needs?: string | string[];
    "timeout-minutes"?: number;
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

/** The one job of `workflow` that runs `command` (up, preview) on `stack`. */
function jobFor(workflow: Workflow, stack: string, command = "up"): [string, Job] {
    const found = Object.entries(workflow.jobs).filter(([, job]) =>
        pulumiSteps(job).some(s => s.with?.["stack-name"] === stack && s.with?.command === command));
    assert.equal(found.length, 1, `exactly one job runs ${command} on ${stack}`);
    return found[0];
}

/** The environments a job names, one per matrix value when the name is a matrix expression. */
function environmentsOf(job: Job): string[] {
    const name = typeof job.environment === "object" ? job.environment.name : job.environment;
    if (name === undefined) return [];
    const m = /^\$\{\{\s*matrix\.(\w+)\s*\}\}$/.exec(name);
    if (!m) return [name];
    const values = job.strategy?.matrix?.[m[1]];
    assert.ok(Array.isArray(values), `matrix.${m[1]} is a list`);
    return values.map(String);
}

/** What a job does, for its timeout: the heaviest Pulumi command it runs, else tests. */
function jobKind(job: Job): keyof typeof TIMEOUT_LIMIT {
    const commands = pulumiSteps(job).map(s => s.with?.command);
    if (commands.includes("up")) return "up";
    if (commands.includes("preview")) return "preview";
    return "test";
}

const triggeredBy = (workflow: Workflow, event: string) => Object.keys(workflow.on).includes(event);

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

    it("previews dev and staging, never prod", () => {
        const matrixJobs = Object.values(workflow.jobs).filter(job => pulumiSteps(job).length > 0);
        assert.equal(matrixJobs.length, 1);
        assert.deepEqual(matrixJobs[0].strategy?.matrix?.stack, PR_STACKS);
    });

    it("gives each preview the environment of its stack", () => {
        const [job] = Object.values(workflow.jobs).filter(j => pulumiSteps(j).length > 0);
        assert.deepEqual(environmentsOf(job), PR_STACKS);
    });

    it("uses pulumi/actions preview with the policy pack and a PR comment", () => {
        for (const job of Object.values(workflow.jobs)) {
            for (const step of pulumiSteps(job)) {
                assert.equal(step.uses, "pulumi/actions@v7");
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
            const [, job] = jobFor(workflow, stack);
            const steps = pulumiSteps(job);
            assert.equal(steps.length, 2, `${stack}: the up, and the up that closes the SSH window`);
            for (const step of steps) {
                assert.equal(step.uses, "pulumi/actions@v7");
                assert.equal(step.with?.command, "up");
                assert.equal(step.with?.["stack-name"], stack);
                assert.equal(step.with?.policyPacks, "policy");
                assert.equal(step.with?.["work-dir"], ".");
            }
        }
    });

    it("deploys dev, then staging, then prod", () => {
        const [dev] = jobFor(workflow, "dev");
        const [staging, stagingJob] = jobFor(workflow, "staging");
        const [, prodJob] = jobFor(workflow, "prod");
        assert.ok(needsOf(stagingJob).includes(dev), "staging needs dev");
        assert.ok(needsOf(prodJob).includes(staging), "prod needs staging");
    });

    it("gives each stack's up the environment of its secrets, production for prod only", () => {
        for (const stack of STACKS) {
            const [, job] = jobFor(workflow, stack);
            assert.deepEqual(environmentsOf(job), [UP_ENVIRONMENT[stack]], stack);
        }
        const production = Object.entries(workflow.jobs).filter(([, job]) => environmentsOf(job).includes("production"));
        assert.deepEqual(production.map(([name]) => name), [jobFor(workflow, "prod")[0]], "only the prod up is gated by production");
    });

    it("previews prod, on the run's summary, in a job the prod up needs, with other credentials", () => {
        const [previewName, previewJob] = jobFor(workflow, "prod", "preview");
        const [, upJob] = jobFor(workflow, "prod");
        assert.ok(needsOf(upJob).includes(previewName), "the prod up needs the prod preview");
        const [step] = pulumiSteps(previewJob);
        assert.equal(step.uses, "pulumi/actions@v7");
        assert.equal(step.with?.policyPacks, "policy");
        assert.equal(step.with?.["comment-on-summary"], true, "the preview is written to the job summary");
        const [previewEnvironment] = environmentsOf(previewJob);
        assert.ok(previewEnvironment, "the preview names an environment (for prod's read-only credentials)");
        assert.notEqual(previewEnvironment, "production", "the preview is not itself waiting for approval");
        assert.deepEqual(environmentsOf(upJob), ["production"]);
    });

    it("opens an SSH window for the runner before each up, and always closes it with a second up", () => {
        for (const stack of STACKS) {
            const [name, job] = jobFor(workflow, stack);
            const steps = job.steps ?? [];
            const at = (predicate: (s: Step) => boolean) => steps.findIndex(predicate);
            const open = at(s => s.run?.trim() === `npx tsx .github/scripts/ssh-window.ts open ${stack}`);
            const up = at(s => s.with?.command === "up");
            const close = at(s => s.run?.trim() === `npx tsx .github/scripts/ssh-window.ts close ${stack}`);
            const last = steps.length - 1;
            assert.ok(open >= 0 && open < up, `${name}: the window opens before the up`);
            assert.equal(steps[open].if, undefined, `${name}: the window opens unconditionally`);
            assert.equal(steps[up].if, undefined, `${name}: the first up runs whenever the window opened`);
            assert.ok(close > up, `${name}: the window closes after the up`);
            assert.ok(steps[close].id, `${name}: the close step has an id`);
            assert.match(steps[close].if ?? "", /^always\(\) && steps\.([\w-]+)\.outcome == 'success'$/, `${name}: close runs even after a failure`);
            assert.ok(steps[close].if?.includes(`steps.${steps[open].id}.`), `${name}: close runs when the window was opened`);
            assert.ok(last > close && steps[last].with?.command === "up", `${name}: an up after the close is the last step`);
            assert.equal(steps[last].if, `always() && steps.${steps[close].id}.outcome == 'success'`, `${name}: the last up runs even after a failure, once the window is closed`);
            assert.equal(steps[last].with?.["continue-on-error"], true, `${name}: the last up removes the rule even if a host step fails`);
        }
    });

    it("serialises each stack's up in its own never-cancelled concurrency group", () => {
        for (const stack of STACKS) {
            const [, job] = jobFor(workflow, stack);
            assert.ok(typeof job.concurrency === "object", `${stack} has a concurrency block`);
            assert.equal(job.concurrency.group, `pulumi-${stack}`);
            assert.equal(job.concurrency["cancel-in-progress"], false);
        }
    });

    it("runs npm ci and npm test before any up", () => {
        for (const stack of STACKS) {
            const [name] = jobFor(workflow, stack);
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

        it(`${file}: install with npm ci on the Node of .nvmrc (npm cache) before running Pulumi`, () => {
            for (const [name, job] of Object.entries(workflow.jobs)) {
                const steps = job.steps ?? [];
                const setup = steps.find(s => s.uses?.startsWith("actions/setup-node"));
                assert.ok(setup, `${name} sets up node`);
                assert.equal(setup.with?.["node-version-file"], ".nvmrc", name);
                assert.equal(setup.with?.["node-version"], undefined, name);
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

        it(`${file}: pass every credential from secrets, under its own name, in jobs that name an environment`, () => {
            for (const [name, job] of Object.entries(workflow.jobs)) {
                for (const step of pulumiSteps(job)) {
                    for (const secret of CLOUD_SECRETS) {
                        assert.equal(step.env?.[secret], `\${{ secrets.${secret} }}`, `${step.name}: ${secret}`);
                    }
                }
                const usesSecrets = strings(job).some(([, value]) => /secrets\./.test(value));
                if (usesSecrets) assert.ok(environmentsOf(job).length > 0, `${name} reads secrets, so it names the environment holding them`);
            }
        });

        it(`${file}: jobs that a pull request triggers name no production environment`, () => {
            if (!triggeredBy(workflow, "pull_request") && !triggeredBy(workflow, "pull_request_target")) {
                assert.ok(triggeredBy(workflow, "push"), `${file} runs on push only`);
                return;
            }
            for (const [name, job] of Object.entries(workflow.jobs)) {
                for (const environment of environmentsOf(job)) {
                    assert.doesNotMatch(environment, /prod/i, `${name} names ${environment}`);
                }
            }
        });

        it(`${file}: bound every job with timeout-minutes, and every step's within it`, () => {
            for (const [name, job] of Object.entries(workflow.jobs)) {
                const limit = TIMEOUT_LIMIT[jobKind(job)];
                const minutes = job["timeout-minutes"];
                assert.ok(typeof minutes === "number" && minutes > 0 && minutes <= limit, `${name}: timeout-minutes ${minutes} (at most ${limit})`);
                const stepMinutes = (job.steps ?? []).map(s => s["timeout-minutes"] ?? 0);
                assert.ok(stepMinutes.reduce((a, b) => a + b, 0) < minutes, `${name}: the steps' own timeouts fit in the job's`);
            }
        });

        it(`${file}: use the current major of each action`, () => {
            for (const [name, job] of Object.entries(workflow.jobs)) {
                for (const step of job.steps ?? []) {
                    if (step.uses === undefined) continue;
                    const [action, ref] = step.uses.split("@");
                    assert.ok(action in CURRENT_ACTIONS, `${name}: ${action} is a known action`);
                    assert.equal(ref, CURRENT_ACTIONS[action], `${name}: ${step.uses}`);
                }
            }
        });

        it(`${file}: pin the Pulumi CLI of package.json in every Pulumi step`, () => {
            for (const job of Object.values(workflow.jobs)) {
                for (const step of pulumiSteps(job)) {
                    assert.equal(String(step.with?.["pulumi-version"]), PULUMI_CLI, `${step.name}`);
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

    it("pin the pulumi launcher exactly in package.json, at the version installed", () => {
        assert.match(PULUMI_CLI, /^\d+\.\d+\.\d+$/, `"pulumi": "${PULUMI_CLI}" is one version`);
        const installed = JSON.parse(fs.readFileSync(path.join(root, "node_modules", "pulumi", "package.json"), "utf8"));
        assert.equal(installed.version, PULUMI_CLI);
    });

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
