/**
 * The metric names a PromQL expression reads: what is left once strings, label matchers, grouping
 * clauses, ranges, numbers, functions and keywords are taken out. Enough for the queries we write
 * (checked for syntax by promtool separately), not a PromQL parser.
 */
const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"]);

export function metricNames(expr: string): string[] {
    const stripped = expr
        .replace(/"(?:[^"\\]|\\.)*"/g, '""')
        .replace(/\{[^}]*\}/g, " ")
        .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
        .replace(/\[[^\]]*\]/g, " ")
        .replace(/\$\w+/g, " ");
    const names = new Set<string>();
    for (const m of stripped.matchAll(/(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
        if (m[2] || KEYWORDS.has(m[1].toLowerCase())) continue;
        names.add(m[1]);
    }
    return [...names];
}

/** A dashboard query as Prometheus would run it: Grafana's variables replaced by plain values. */
export function withoutGrafanaVariables(expr: string): string {
    return expr.replace(/\$__rate_interval/g, "1m").replace(/\$node/g, ".*");
}
