/** The shell commands of a Markdown text's fenced bash blocks, one per line, comments removed. */
export function bashCommands(markdown: string): string[] {
    const blocks = [...markdown.matchAll(/```bash\n([\s\S]*?)```/g)].map(m => m[1]);
    return blocks.flatMap(b => b.split("\n")).map(l => l.replace(/\s+#.*$/, "").trim()).filter(l => l && !l.startsWith("#"));
}

/** The text of a `## ` section, from its heading to the next one. */
export function section(markdown: string, headingStart: string): string {
    const start = markdown.indexOf(`## ${headingStart}`);
    if (start < 0) throw new Error(`no section "## ${headingStart}..."`);
    const end = markdown.indexOf("\n## ", start + 3);
    return markdown.slice(start, end < 0 ? undefined : end);
}
