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
    /** Put first on PATH. */
    binDir: string;
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
    return { binDir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
