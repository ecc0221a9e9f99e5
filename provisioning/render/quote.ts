/** Quoting for the languages our renderers emit. */

/** A POSIX shell word: single-quoted, with embedded quotes closed and escaped. */
export function shellQuote(value: string): string {
    if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
    return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** A Python string literal (JSON's escaping is valid Python for str). */
export function pyString(value: string): string {
    return JSON.stringify(value);
}

/** A value for a systemd unit setting: refuse what would change the line's meaning. */
export function unitValue(value: string): string {
    if (/[\n\r]/.test(value)) throw new Error(`a systemd setting cannot contain a newline: ${JSON.stringify(value)}`);
    return value;
}
