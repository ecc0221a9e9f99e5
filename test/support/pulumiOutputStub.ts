/**
 * A stand-in for `pulumi stack output` (the tests have no Pulumi CLI and no
 * backend): a `pulumi` script to put first on PATH that prints a recorded
 * output the way the CLI prints a string output (pkg/cmd/pulumi/stack/
 * stack_output.go: the value and a newline; `[secret]` for a secret output
 * without --show-secrets; an error for an unknown output). It answers for
 * one stack only, so a command naming another stack fails.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface PulumiOutputStub {
    /** Put first on PATH: the CLI installed. */
    binDir: string;
    /** A project directory whose node_modules/.bin has the stub: the CLI only through `npx pulumi`, as the README installs it. */
    projectDir: string;
    /** Removes the script and the recorded outputs (they may hold a private key). */
    remove(): void;
}

export function pulumiOutputStub(stack: string, outputs: Record<string, string>, secretOutputs: string[]): PulumiOutputStub {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-pulumi-stub-"));
    const values = path.join(dir, "outputs");
    fs.mkdirSync(values, { mode: 0o700 });
    for (const [name, value] of Object.entries(outputs)) {
        fs.writeFileSync(path.join(values, name), value, { mode: 0o600 });
        if (secretOutputs.includes(name)) fs.writeFileSync(path.join(values, `${name}.secret`), "");
    }
    const script = `#!/bin/sh
[ "$1 $2" = "stack output" ] || { echo "stub: only 'stack output' is known" >&2; exit 2; }
shift 2
stack= show= name=
while [ $# -gt 0 ]; do
    case $1 in
        --stack|-s) stack=$2; shift ;;
        --show-secrets) show=1 ;;
        -*) echo "stub: unknown flag $1" >&2; exit 2 ;;
        *) name=$1 ;;
    esac
    shift
done
[ "$stack" = '${stack}' ] || { echo "error: no stack named '$stack'" >&2; exit 255; }
[ -f '${values}'/"$name" ] || { echo "error: current stack does not have output property '$name'" >&2; exit 255; }
if [ -f '${values}'/"$name.secret" ] && [ -z "$show" ]; then echo '[secret]'; exit 0; fi
cat '${values}'/"$name" && echo
`;
    const binDir = path.join(dir, "bin");
    fs.mkdirSync(binDir);
    fs.writeFileSync(path.join(binDir, "pulumi"), script, { mode: 0o755 });
    const projectDir = path.join(dir, "project");
    fs.mkdirSync(path.join(projectDir, "node_modules", ".bin"), { recursive: true });
    fs.writeFileSync(path.join(projectDir, "node_modules", ".bin", "pulumi"), script, { mode: 0o755 });
    return { binDir, projectDir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** This PATH without any directory that has a `pulumi` (npm run puts the repo's launcher on it): node and npx stay. */
export function pathWithoutPulumi(pathVar = process.env.PATH ?? ""): string {
    return pathVar
        .split(":")
        .filter(d => d && !fs.existsSync(path.join(d, "pulumi")))
        .join(":");
}
