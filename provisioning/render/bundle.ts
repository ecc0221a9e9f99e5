/**
 * The file bundle hostctl reads on stdin: several files in one command, each
 * readable in `pulumi preview` diffs. Format: "pycluster-bundle 1\n", then per
 * file "file <name> <octal mode> <byte length>\n<content>\n", then "end\n"
 * (the header and the allowed names are the host contract's).
 */
import { BUNDLE } from "../hostContract";

export interface BundleFile {
    /** A plain name, or tls/<name>; hostctl maps it to a fixed destination. */
    name: string;
    mode: number;
    content: string;
}

export function renderBundle(files: BundleFile[]): string {
    const parts = [`${BUNDLE.header}\n`];
    for (const f of files) {
        if (!BUNDLE.name.test(f.name)) throw new Error(`bundle file name ${JSON.stringify(f.name)} is not allowed`);
        parts.push(`file ${f.name} ${f.mode.toString(8).padStart(4, "0")} ${Buffer.byteLength(f.content, "utf8")}\n`, f.content, "\n");
    }
    parts.push("end\n");
    return parts.join("");
}
