/**
 * local/ssh.ts against in-process ssh2 servers on 127.0.0.1: the connection semantics of
 * @pulumi/command (host key pinning, dial retries, one proxy hop, stdin, exit codes).
 * No root needed.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { after, test } from "node:test";
import { AuthContext, Connection, ParsedKey, Server, ServerChannel, utils } from "ssh2";
import { parsableKeyPair } from "../support/sshKeys";
import { CommandInterruptedError, HostKeyMismatchError, runCommand, SshConnection } from "../../local/ssh";

const clientKey = parsableKeyPair("client");
const allowed = utils.parseKey(clientKey.public) as ParsedKey;

interface FakeServer {
    port: number;
    hostKey: string;
    /** Users that authenticated, in order. */
    logins: string[];
    /** Number of TCP connections accepted. */
    connections: number;
    close(): Promise<void>;
}

/**
 * An SSH server that runs a few fake commands: `echo-stdin` (stdin back on stdout), `fail`
 * (stderr, exit 3), `whoami`, `hang-up` (closes the connection without an exit status). With
 * `forward`, it also opens direct-tcpip channels (it can be a bastion).
 */
function startServer(o: { port?: number; forward?: boolean; name?: string } = {}): Promise<FakeServer> {
    const host = parsableKeyPair(o.name ?? "server");
    const state = { logins: [] as string[], connections: 0 };
    const server = new Server({ hostKeys: [host.private] }, (client: Connection) => {
        state.connections++;
        let user = "";
        client.on("authentication", (ctx: AuthContext) => {
            if (ctx.method !== "publickey" || ctx.key.algo !== allowed.type || !ctx.key.data.equals(allowed.getPublicSSH())) return ctx.reject();
            if (ctx.signature && ctx.blob && !allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) return ctx.reject();
            user = ctx.username;
            ctx.accept();
        });
        client.on("ready", () => {
            state.logins.push(user);
            client.on("session", (accept) => {
                accept().on("exec", (acceptExec, _reject, info) => runFake(client, acceptExec(), info.command, user));
            });
            if (o.forward) {
                client.on("tcpip", (accept, reject, info) => {
                    const upstream = net.connect(info.destPort, info.destIP);
                    upstream.once("error", () => reject());
                    upstream.once("connect", () => {
                        const channel = accept();
                        upstream.pipe(channel).pipe(upstream);
                    });
                });
            }
        });
        client.on("error", () => undefined);
    });
    return new Promise((resolve) => {
        server.listen(o.port ?? 0, "127.0.0.1", () => {
            resolve({
                port: (server.address() as net.AddressInfo).port,
                hostKey: host.public,
                get logins() {
                    return state.logins;
                },
                get connections() {
                    return state.connections;
                },
                close: () => new Promise<void>((r) => server.close(() => r())),
            } as FakeServer);
        });
    });
}

function runFake(client: Connection, channel: ServerChannel, command: string, user: string) {
    const finish = (code: number) => {
        channel.exit(code);
        channel.end();
    };
    if (command === "echo-stdin") {
        const chunks: Buffer[] = [];
        channel.on("data", (d: Buffer) => chunks.push(d));
        channel.on("end", () => {
            channel.write(Buffer.concat(chunks));
            finish(0);
        });
    } else if (command === "fail") {
        channel.stderr.write("boom\n");
        finish(3);
    } else if (command === "whoami") {
        channel.write(`${user}\n`);
        finish(0);
    } else if (command === "hang-up") {
        channel.write("partial");
        setTimeout(() => client.end(), 20);
    } else {
        channel.stderr.write(`unknown command ${command}\n`);
        finish(127);
    }
}

const servers: FakeServer[] = [];
async function server(o?: Parameters<typeof startServer>[0]) {
    const s = await startServer(o);
    servers.push(s);
    return s;
}
after(() => Promise.all(servers.map((s) => s.close())));

const conn = (s: FakeServer, extra: Partial<SshConnection> = {}): SshConnection => ({
    host: "127.0.0.1",
    port: s.port,
    user: "debian",
    privateKey: clientKey.private,
    ...extra,
});

/** A local port that nothing listens on (yet). */
async function freePort(): Promise<number> {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    return port;
}

test("runCommand writes stdin, then closes it, and collects stdout", async () => {
    const s = await server();
    const r = await runCommand(conn(s), "echo-stdin", "line 1\nline 2\n");
    assert.deepEqual(r, { stdout: "line 1\nline 2\n", stderr: "", exitCode: 0, signal: undefined });
});

test("runCommand returns stderr and a non-zero exit code (it does not throw)", async () => {
    const s = await server();
    const r = await runCommand(conn(s), "fail");
    assert.equal(r.exitCode, 3);
    assert.equal(r.stderr, "boom\n");
});

test("the user defaults to root, as in @pulumi/command", async () => {
    const s = await server();
    const r = await runCommand({ host: "127.0.0.1", port: s.port, privateKey: clientKey.private }, "whoami");
    assert.equal(r.stdout, "root\n");
});

test("a pinned host key must match; a mismatch fails at once, without retries", async () => {
    const s = await server();
    assert.equal((await runCommand(conn(s, { hostKey: s.hostKey }), "whoami")).stdout, "debian\n");
    const other = utils.generateKeyPairSync("ed25519").public;
    const before = s.connections;
    await assert.rejects(runCommand(conn(s, { hostKey: other, dialErrorLimit: 5 }), "whoami"), (err: Error) => {
        assert.ok(err instanceof HostKeyMismatchError);
        assert.match(err.message, /does not match/);
        return true;
    });
    assert.equal(s.connections - before, 1);
});

test("dialing is retried until the server comes up", async () => {
    const port = await freePort();
    const late = new Promise<FakeServer>((resolve) => setTimeout(() => resolve(server({ port })), 700));
    const r = await runCommand({ host: "127.0.0.1", port, user: "debian", privateKey: clientKey.private, dialErrorLimit: 20 }, "whoami");
    assert.equal(r.stdout, "debian\n");
    await late;
});

test("dialErrorLimit bounds the failed dials (0: a single attempt)", async () => {
    const port = await freePort();
    const started = Date.now();
    await assert.rejects(
        runCommand({ host: "127.0.0.1", port, privateKey: clientKey.private, dialErrorLimit: 0 }, "whoami"),
        /ECONNREFUSED.*after 1 failed dial\)/,
    );
    assert.ok(Date.now() - started < 1000);
    await assert.rejects(runCommand({ host: "127.0.0.1", port, privateKey: clientKey.private, dialErrorLimit: 2 }, "whoami"), /after 3 failed dials/);
});

test("with a proxy, the target is reached through a direct-tcpip channel of the bastion", async () => {
    const bastion = await server({ forward: true, name: "bastion" });
    const target = await server({ name: "target" });
    const proxied = conn(target, { hostKey: target.hostKey, proxy: { ...conn(bastion), user: "jump", hostKey: bastion.hostKey } });
    const r = await runCommand(proxied, "echo-stdin", "through the bastion");
    assert.equal(r.stdout, "through the bastion");
    assert.deepEqual(bastion.logins.slice(-1), ["jump"]);
    assert.deepEqual(target.logins.slice(-1), ["debian"]);
    // the proxy's own pinned key is checked too
    const wrong = utils.generateKeyPairSync("ed25519").public;
    await assert.rejects(runCommand({ ...proxied, proxy: { ...proxied.proxy!, hostKey: wrong } }, "whoami"), /proxy.*does not match/);
});

test("a connection lost before the exit status is an error (as with Go's ssh), also through a proxy", async () => {
    const bastion = await server({ forward: true });
    const target = await server();
    for (const c of [conn(target), conn(target, { proxy: conn(bastion) })]) {
        await assert.rejects(runCommand(c, "hang-up"), (err: Error) => {
            assert.ok(err instanceof CommandInterruptedError, String(err));
            assert.equal(err.stdout, "partial");
            return true;
        });
    }
});
