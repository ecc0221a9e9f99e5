export interface SysctlOptions {
    somaxconn: number;
    synBacklog: number;
    netdevBacklog: number;
    localPortRange: [number, number];
    /** Listening ports on this host, kept out of the ephemeral range. */
    reservedPorts: number[];
    fileMax: number;
    nrOpen: number;
}

/**
 * /etc/sysctl.d drop-in. Every key carries systemd-sysctl's "-" prefix: a key
 * the kernel refuses (containers refuse fs.*) is logged and skipped instead of
 * failing the boot; the push reports which keys did not take.
 */
export function renderSysctl(o: SysctlOptions): string {
    const reserved = [...new Set(o.reservedPorts)].sort((a, b) => a - b);
    const settings: [string, string, string][] = [
        ["net.core.somaxconn", String(o.somaxconn), "accept queue of a listening socket (nginx, gunicorn backlog)"],
        ["net.ipv4.tcp_max_syn_backlog", String(o.synBacklog), "half-open connections during bursts"],
        ["net.core.netdev_max_backlog", String(o.netdevBacklog), "packets queued per CPU before the stack takes them"],
        ["net.ipv4.ip_local_port_range", `${o.localPortRange[0]} ${o.localPortRange[1]}`, "one local port per LB->app connection"],
        ["net.ipv4.ip_local_reserved_ports", reserved.join(","), "our listening ports are never handed out as ephemeral ports"],
        ["net.ipv4.tcp_tw_reuse", "1", "reuse TIME_WAIT ports for new outgoing connections"],
        ["net.ipv4.tcp_fin_timeout", "15", "release closed connections sooner"],
        ["fs.file-max", String(o.fileMax), "open files, system-wide"],
        ["fs.nr_open", String(o.nrOpen), "open files one process may be allowed"],
    ];
    const lines = [`# Rendered by pycluster. "-" = a key the kernel refuses is skipped, not fatal.`];
    for (const [key, value, why] of settings) {
        if (key === "net.ipv4.ip_local_reserved_ports" && reserved.length === 0) continue;
        lines.push(`# ${why}`, `-${key} = ${value}`);
    }
    return lines.join("\n") + "\n";
}

/** Environment file for the app: KEY="value" lines systemd's EnvironmentFile parses. */
export function renderEnvFile(vars: Record<string, string | number | boolean>): string {
    const lines = ["# Rendered by pycluster from the secret appEnv setting. Mode 0600, root only."];
    for (const key of Object.keys(vars).sort()) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`invalid environment variable name ${JSON.stringify(key)}`);
        const value = String(vars[key]);
        if (/[\n\r\0]/.test(value)) throw new Error(`environment variable ${key} contains a newline or NUL`);
        // Inside double quotes systemd unescapes \\ \" \$ and the backtick; escape exactly those.
        lines.push(`${key}="${value.replace(/[\\"`$]/g, c => `\\${c}`)}"`);
    }
    return lines.join("\n") + "\n";
}
