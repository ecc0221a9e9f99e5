import { test } from "node:test";
import assert from "node:assert/strict";
import { renderEnvFile, renderSysctl } from "../../../provisioning/render/kernel";
import { py } from "../../support/hostTools";

const SYSCTL = { somaxconn: 12500, synBacklog: 12500, netdevBacklog: 16384, localPortRange: [1024, 65535] as [number, number], reservedPorts: [8080, 8000, 8080], fileMax: 4194304, nrOpen: 1048576 };

test("sysctl drop-in: every key optional ('-'), values from the sizing, listening ports reserved", () => {
    const text = renderSysctl(SYSCTL);
    const settings = Object.fromEntries(text.split("\n").filter(l => l.startsWith("-")).map(l => l.slice(1).split(" = ")));
    assert.deepEqual(settings, {
        "net.core.somaxconn": "12500",
        "net.ipv4.tcp_max_syn_backlog": "12500",
        "net.core.netdev_max_backlog": "16384",
        "net.ipv4.ip_local_port_range": "1024 65535",
        "net.ipv4.ip_local_reserved_ports": "8000,8080",
        "net.ipv4.tcp_tw_reuse": "1",
        "net.ipv4.tcp_fin_timeout": "15",
        "fs.file-max": "4194304",
        "fs.nr_open": "1048576",
    });
    assert.doesNotMatch(renderSysctl({ ...SYSCTL, reservedPorts: [] }), /reserved_ports/);
});

test("env file: values survive systemd's double-quote escaping, read back by hostctl's parser", () => {
    const vars = { PLAIN: "abc", QUOTES: 'say "hi"', DOLLAR: "$HOME and ${X}", BACKTICK: "`id`", BACKSLASH: "C:\\path\\", EQUALS: "a=b=c", SPACES: "  padded  ", UNICODE: "héllo ✓", NUMBER: 42, FLAG: true };
    const text = renderEnvFile(vars);
    const parsed = JSON.parse(py(`import json\nprint(json.dumps(h.parse_env_file(${JSON.stringify(text)}.encode())))`));
    assert.deepEqual(parsed, Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, String(v)])));
    assert.throws(() => renderEnvFile({ BAD: "a\nb" }), /newline/);
    assert.throws(() => renderEnvFile({ "1X": "a" }), /invalid environment variable name/);
});
