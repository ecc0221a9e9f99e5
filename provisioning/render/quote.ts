/** Quoting for the other languages our renderers emit (shell words: lib/shell.ts). */

/** A Python string literal (JSON's escaping is valid Python for str). */
export function pyString(value: string): string {
    return JSON.stringify(value);
}

/** A value for a systemd unit setting: refuse what would change the line's meaning. */
export function unitValue(value: string): string {
    if (/[\n\r]/.test(value)) throw new Error(`a systemd setting cannot contain a newline: ${JSON.stringify(value)}`);
    return value;
}

/**
 * One word of a systemd command line (ExecStart=): double-quoted when needed, with `$` and `%`
 * doubled so systemd expands neither variables nor specifiers in it.
 */
export function systemdWord(value: string): string {
    if (/[\n\r]/.test(value)) throw new Error(`a systemd command line cannot contain a newline: ${JSON.stringify(value)}`);
    const literal = value.replace(/\$/g, "$$$$").replace(/%/g, "%%");
    if (/^[A-Za-z0-9_@+=:,./-]+$/.test(literal)) return literal;
    return `"${literal.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
