/**
 * POSIX shell quoting: the one function every command line the project builds
 * goes through (commands pushed to hosts, the local cloud's own scripts).
 */

/**
 * One shell word: bare when it is made only of characters no shell treats
 * specially, else single-quoted with each embedded quote closed, escaped in
 * double quotes and reopened ('it'"'"'s').
 */
export function shellQuote(value: string): string {
    if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
    return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** A command line from words, each quoted as needed. */
export function shellLine(words: readonly string[]): string {
    return words.map(shellQuote).join(" ");
}
