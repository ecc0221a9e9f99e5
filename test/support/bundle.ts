/** Reads a hostctl bundle (provisioning/render/bundle.ts) back into {name: content}. */
export function bundleFiles(bundle: string): Record<string, string> {
    const data = Buffer.from(bundle, "utf8");
    const header = "pycluster-bundle 1\n";
    if (!data.subarray(0, header.length).equals(Buffer.from(header))) throw new Error("not a pycluster bundle");
    const files: Record<string, string> = {};
    let pos = header.length;
    for (;;) {
        const eol = data.indexOf(0x0a, pos);
        const line = data.subarray(pos, eol).toString("utf8");
        pos = eol + 1;
        if (line === "end") return files;
        const [kind, name, , length] = line.split(" ");
        if (kind !== "file") throw new Error(`bad bundle line ${JSON.stringify(line)}`);
        files[name] = data.subarray(pos, pos + Number(length)).toString("utf8");
        pos += Number(length) + 1;
    }
}
