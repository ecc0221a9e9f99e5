/**
 * SSH to local hosts with the npm package ssh2, with the connection semantics of
 * @pulumi/command's `remote` resources, so the mocks run a program's remote commands the way the
 * real provider would:
 *
 * - `user` defaults to root, `port` to 22;
 * - `hostKey` (authorized_keys format) pins the server's key: any other key fails the connection
 *   (the provider ignores the key when it is unset, and so do we);
 * - dialing is retried: `dialErrorLimit` failed dials are tolerated (default 10, -1 = unlimited),
 *   each dial (TCP + handshake + authentication) limited to `perDialTimeout` seconds (default 15,
 *   0 = no limit);
 * - `proxy`: connect to the bastion first, then to host:port through a direct-tcpip channel of it
 *   (one hop, like ProxyJump); the bastion has its own retry settings.
 *
 * Difference: a host key mismatch fails at once instead of being retried (it never heals by waiting).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Client, ClientChannel, ConnectConfig, SFTPWrapper } from "ssh2";
import { Duplex } from "node:stream";

/** Bastion settings, as @pulumi/command's ProxyConnection. */
export interface SshProxyConnection {
    host: string;
    port?: number;
    user?: string;
    privateKey?: string;
    privateKeyPassword?: string;
    password?: string;
    hostKey?: string;
    dialErrorLimit?: number;
    perDialTimeout?: number;
}

/** Connection settings, as @pulumi/command's remote Connection. */
export interface SshConnection extends SshProxyConnection {
    proxy?: SshProxyConnection;
}

export interface CommandResult {
    stdout: string;
    stderr: string;
    /** Exit status of the command; -1 if it was ended by a signal (see `signal`). */
    exitCode: number;
    signal?: string;
}

/** Raised when the server's host key is not the pinned `hostKey`. */
export class HostKeyMismatchError extends Error {
    constructor(host: string, expected: string, got: string) {
        super(`host key of ${host} does not match: expected ${expected}, server offered ${got}`);
        this.name = "HostKeyMismatchError";
    }
}

/** Raised when the connection ends before the command reported an exit status (e.g. it rebooted the host). */
export class CommandInterruptedError extends Error {
    constructor(
        readonly command: string,
        readonly stdout: string,
        readonly stderr: string,
    ) {
        super(`the connection closed before ${JSON.stringify(command.slice(0, 80))} reported its exit status`);
        this.name = "CommandInterruptedError";
    }
}

const DEFAULT_DIAL_ERROR_LIMIT = 10;
const DEFAULT_PER_DIAL_TIMEOUT_S = 15;

/** A parsed authorized_keys-style public key: `ssh-ed25519 AAAA... [comment]`. */
export interface PublicKeyLine {
    type: string;
    blob: Buffer;
}

export function parsePublicKeyLine(line: string): PublicKeyLine {
    const words = line.trim().split(/\s+/);
    const blob = Buffer.from(words[1] ?? "", "base64");
    // the blob starts with the key type as an SSH string: check it names the same type
    const typeLen = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
    if (words.length < 2 || blob.length < 4 + typeLen || blob.subarray(4, 4 + typeLen).toString() !== words[0]) {
        throw new Error(`invalid hostKey ${JSON.stringify(line.slice(0, 60))}: expected authorized_keys format, e.g. "ssh-ed25519 AAAA... comment"`);
    }
    return { type: words[0], blob };
}

/** Host key algorithms to offer so that the server presents a key of the pinned type. */
export function hostKeyAlgorithmsFor(type: string): string[] {
    return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
}

function formatKey(blob: Buffer): string {
    const typeLen = blob.readUInt32BE(0);
    return `${blob.subarray(4, 4 + typeLen).toString()} ${blob.toString("base64")}`;
}

/** One dial attempt: TCP (or `sock`) + handshake + authentication. */
function dialOnce(c: SshProxyConnection, sock?: Duplex): Promise<Client> {
    return new Promise((resolve, reject) => {
        const client = new Client();
        client.once("close", () => closedClients.add(client));
        let mismatch: HostKeyMismatchError | undefined;
        const config: ConnectConfig = {
            host: c.host,
            port: c.port ?? 22,
            username: c.user ?? "root",
            privateKey: c.privateKey,
            passphrase: c.privateKeyPassword,
            password: c.password,
            sock,
            readyTimeout: c.perDialTimeout === 0 ? 2 ** 31 - 1 : (c.perDialTimeout ?? DEFAULT_PER_DIAL_TIMEOUT_S) * 1000,
            keepaliveInterval: 15_000,
        };
        if (c.hostKey) {
            const pinned = parsePublicKeyLine(c.hostKey);
            config.algorithms = { serverHostKey: hostKeyAlgorithmsFor(pinned.type) as never };
            config.hostVerifier = (key: Buffer) => {
                if (key.equals(pinned.blob)) return true;
                mismatch = new HostKeyMismatchError(c.host, c.hostKey!.trim(), formatKey(key));
                return false;
            };
        }
        const fail = (err: Error) => {
            client.removeAllListeners("ready");
            client.on("error", () => undefined);
            client.destroy();
            reject(mismatch ?? err);
        };
        client.once("ready", () => {
            client.removeListener("error", fail);
            client.on("error", () => undefined); // later errors surface through the channels
            resolve(client);
        });
        client.once("error", fail);
        client.connect(config);
    });
}

/** Dials with retries, as the provider does. `open` makes the transport for each attempt. */
async function dialWithRetry(c: SshProxyConnection, what: string, open?: () => Promise<Duplex>): Promise<Client> {
    const limit = c.dialErrorLimit ?? DEFAULT_DIAL_ERROR_LIMIT;
    let delay = 250;
    for (let errors = 0; ; ) {
        try {
            const sock = open ? await open() : undefined;
            return await dialOnce(c, sock);
        } catch (err) {
            errors++;
            if (process.env.PYCLUSTER_DEBUG_SSH) console.error(`${new Date().toISOString()} ${what} ${c.host}: dial ${errors} failed: ${(err as Error).message}`);
            if (err instanceof HostKeyMismatchError || (limit >= 0 && errors > limit)) {
                const e = err as Error;
                e.message = `${what} ${c.user ?? "root"}@${c.host}:${c.port ?? 22}: ${e.message} (after ${errors} failed dial${errors > 1 ? "s" : ""})`;
                throw e;
            }
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 1.5, 5000);
        }
    }
}

/** An open SSH session to a host (through its bastion, if any). Call `close()` when done. */
export interface SshSession {
    client: Client;
    /** Ends the connection(s) and resolves once they are closed, so nothing keeps the process alive. */
    close(): Promise<void>;
}

/**
 * Ends a connection politely and waits for it to close; destroys it after `graceMs` (the peer
 * may be gone, e.g. its address was just detached, and a FIN would be retried for minutes).
 */
function closeClient(client: Client, graceMs = 2000): Promise<void> {
    return new Promise((resolve) => {
        if (closedClients.has(client)) return resolve();
        const timers = [
            setTimeout(() => client.destroy(), graceMs),
            setTimeout(resolve, 2 * graceMs), // never wait forever, whatever ssh2 does
        ];
        client.once("close", () => {
            timers.forEach(clearTimeout);
            resolve();
        });
        client.end();
    });
}

/** Clients whose connection has closed (ssh2 has no public flag for it). */
const closedClients = new WeakSet<Client>();

/** Connects as the connection describes (retrying, through the proxy if set). */
export async function connect(c: SshConnection): Promise<SshSession> {
    if (!c.proxy) {
        const client = await dialWithRetry(c, "ssh");
        return { client, close: () => closeClient(client) };
    }
    let bastion = await dialWithRetry(c.proxy, "ssh (proxy)");
    const forward = async (): Promise<Duplex> => {
        // a dead bastion connection is dialed again; the tunnel is opened anew for each attempt
        if (closedClients.has(bastion)) bastion = await dialWithRetry(c.proxy!, "ssh (proxy)");
        return new Promise((resolve, reject) =>
            bastion.forwardOut("127.0.0.1", 0, c.host, c.port ?? 22, (err, channel) => {
                if (err) return reject(err);
                // ssh2 treats the tunnel like a TCP socket, but a channel that the far end closed
                // only ends: destroy it so that the connection inside sees 'close' and fails its
                // pending commands (else a command that reboots the host would wait forever)
                channel.once("end", () => channel.destroy());
                resolve(channel);
            }),
        );
    };
    try {
        const client = await dialWithRetry(c, "ssh (via proxy)", forward);
        return {
            client,
            close: async () => {
                await closeClient(client);
                await closeClient(bastion);
            },
        };
    } catch (err) {
        await closeClient(bastion);
        throw err;
    }
}


/** Runs `command` on the host (with stdin, then closed) and collects its output. */
export async function runCommand(c: SshConnection, command: string, stdin?: string): Promise<CommandResult> {
    const session = await connect(c);
    try {
        return await execOn(session.client, command, stdin);
    } finally {
        await session.close();
    }
}

/** Runs a command on an open session. */
export function execOn(client: Client, command: string, stdin?: string): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
        client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
            if (err) return reject(err);
            const out: Buffer[] = [];
            const errOut: Buffer[] = [];
            let exitCode: number | undefined;
            let signal: string | undefined;
            stream.on("data", (d: Buffer) => out.push(d));
            stream.stderr.on("data", (d: Buffer) => errOut.push(d));
            stream.on("exit", (code: number | null, sig?: string) => {
                exitCode = typeof code === "number" ? code : -1;
                if (sig) signal = sig;
            });
            stream.on("close", () => {
                const stdout = Buffer.concat(out).toString("utf8");
                const stderr = Buffer.concat(errOut).toString("utf8");
                if (exitCode === undefined) {
                    // as Go's x/crypto/ssh (used by @pulumi/command): no exit status is an error
                    return reject(new CommandInterruptedError(command, stdout, stderr));
                }
                resolve({ stdout, stderr, exitCode, signal });
            });
            stream.on("error", reject);
            stream.end(stdin ?? "");
        });
    });
}

/**
 * Copies a local file or directory to the host over SFTP, like @pulumi/command's CopyToRemote:
 * missing parent directories are created; when `remotePath` is an existing directory the source
 * is copied into it; a file overwrites an existing file; a directory onto an existing file fails.
 * File modes are kept.
 */
export async function copyToRemote(c: SshConnection, localPath: string, remotePath: string): Promise<void> {
    const session = await connect(c);
    try {
        const sftp = await new Promise<SFTPWrapper>((resolve, reject) => session.client.sftp((e, s) => (e ? reject(e) : resolve(s))));
        try {
            const local = fs.statSync(localPath);
            const existing = await statRemote(sftp, remotePath);
            let target = remotePath;
            if (existing?.isDirectory()) target = path.posix.join(remotePath, path.basename(path.resolve(localPath)));
            else if (existing && local.isDirectory()) throw new Error(`cannot copy directory ${localPath} onto existing remote file ${remotePath}`);
            await mkdirRemote(sftp, path.posix.dirname(target));
            if (local.isDirectory()) await putDirectory(sftp, localPath, target);
            else await putFile(sftp, localPath, target, local.mode & 0o7777);
        } finally {
            sftp.end();
        }
    } finally {
        await session.close();
    }
}

type RemoteStats = { isDirectory(): boolean };

function statRemote(sftp: SFTPWrapper, p: string): Promise<RemoteStats | undefined> {
    return new Promise((resolve, reject) =>
        sftp.stat(p, (err, stats) => {
            if (!err) return resolve(stats);
            if ((err as Error & { code?: number }).code === 2) return resolve(undefined); // SSH_FX_NO_SUCH_FILE
            reject(err);
        }),
    );
}

async function mkdirRemote(sftp: SFTPWrapper, dir: string): Promise<void> {
    if (dir === "/" || dir === "." || dir === "") return;
    const stats = await statRemote(sftp, dir);
    if (stats) {
        if (!stats.isDirectory()) throw new Error(`remote path ${dir} exists and is not a directory`);
        return;
    }
    await mkdirRemote(sftp, path.posix.dirname(dir));
    await new Promise<void>((resolve, reject) => sftp.mkdir(dir, (err) => (err ? reject(err) : resolve())));
}

function putFile(sftp: SFTPWrapper, local: string, remote: string, mode: number): Promise<void> {
    return new Promise((resolve, reject) =>
        sftp.fastPut(local, remote, { mode }, (err) => {
            if (err) return reject(new Error(`copying ${local} to ${remote}: ${err.message}`));
            // fastPut's mode applies to new files only: set it on overwritten ones too
            sftp.chmod(remote, mode, (e) => (e ? reject(e) : resolve()));
        }),
    );
}

async function putDirectory(sftp: SFTPWrapper, local: string, remote: string): Promise<void> {
    await mkdirRemote(sftp, remote);
    for (const entry of fs.readdirSync(local, { withFileTypes: true })) {
        const from = path.join(local, entry.name);
        const to = path.posix.join(remote, entry.name);
        if (entry.isDirectory()) await putDirectory(sftp, from, to);
        else if (entry.isFile()) await putFile(sftp, from, to, fs.statSync(from).mode & 0o7777);
        // symlinks and special files are skipped, as an archive of regular files would hold
    }
}
