/**
 * hostctl's drain (provisioning/host/hostctl/rollout.py drain_rules) with the real nft, in two network
 * namespaces this test creates and removes: an "LB" with a keep-alive connection to an "app node"
 * opened before the drain, as nginx's upstream pool has. The drain must refuse new connections from
 * other hosts and leave established ones alone (their requests finish; nginx retries only refusals).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { missingTools, py, sh } from "../support/hostTools";

const PORT = 8000;

/** The scenario as one shell script: setup, the three connections, teardown on every exit (by PID and name). */
function script(): string {
    const id = `pycdrain${process.pid}`;
    const lb = `${id}l`;
    const node = `${id}n`;
    const server = `import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.251.0.2", ${PORT})); s.listen(16)
def serve(c):
    while True:
        d = c.recv(100)
        if not d: return
        c.sendall(b"pong:" + d)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()`;
    const client = `import socket, subprocess, sys
def ask(c, what):
    try:
        c.sendall(what); print(c.recv(100).decode())
    except OSError as e: print(type(e).__name__)
def connect():
    try: return socket.create_connection(("10.251.0.2", ${PORT}), timeout=3)
    except OSError as e: print(type(e).__name__); return None
kept = connect(); ask(kept, b"before")
subprocess.run(["ip", "netns", "exec", "${node}", "nft", "-f", "-"], input=sys.argv[1].encode(), check=True)
ask(kept, b"established")
fresh = connect()
if fresh: ask(fresh, b"new")`;
    const local = `import socket
c = socket.create_connection(("10.251.0.2", ${PORT}), timeout=3); c.sendall(b"loopback"); print(c.recv(100).decode())`;
    return `set -eu
cleanup() { [ -n "\${SRV:-}" ] && kill "$SRV" 2>/dev/null; ip netns del ${lb} 2>/dev/null; ip netns del ${node} 2>/dev/null; true; }
trap cleanup EXIT
ip netns add ${lb}; ip netns add ${node}
ip link add ${id}a netns ${lb} type veth peer name ${id}b netns ${node}
ip -n ${lb} addr add 10.251.0.1/24 dev ${id}a; ip -n ${lb} link set ${id}a up; ip -n ${lb} link set lo up
ip -n ${node} addr add 10.251.0.2/24 dev ${id}b; ip -n ${node} link set ${id}b up; ip -n ${node} link set lo up
ip netns exec ${node} python3 -c '${server}' & SRV=$!
for i in $(seq 50); do ip netns exec ${node} ss -ltn | grep -q ':${PORT} ' && break; sleep 0.1; done
ip netns exec ${lb} python3 -c '${client}' "$1"
ip netns exec ${node} python3 -c '${local}'
`;
}

test("a drained node refuses new connections from other hosts but not its established ones (nginx's pooled keep-alive connections), nor loopback (the gate)", t => {
    const skip = missingTools(["netns"]);
    if (skip) return t.skip(skip);
    const rules = py(`print(h.drain_rules(${PORT}), end="")`);
    const r = sh("bash", ["-c", script(), "drain-test", rules]);
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(r.output.trim().split("\n"), [
        "pong:before",
        "pong:established", // `ct state new` answered this one with a reset (ConnectionResetError)
        "ConnectionRefusedError",
        "pong:loopback",
    ]);
});

test("the drain table replaces itself (a second drain is not an error) and names the app port", () => {
    const rules = py(`print(h.drain_rules(8123), end="")`);
    assert.match(rules, /^add table inet pycluster_node_drain\ndelete table inet pycluster_node_drain\n/);
    assert.match(rules, /tcp dport 8123 tcp flags & \(syn \| ack\) == syn reject with tcp reset/);
    assert.doesNotMatch(rules, /ct state/, "no conntrack: it would judge connections opened before it was on");
});
