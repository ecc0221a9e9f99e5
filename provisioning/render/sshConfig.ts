import { shellQuote } from "../../lib/shell";

/**
 * The operator's SSH access to a stack's hosts: an ssh_config with a Host
 * block per node, a known_hosts with the host key the program generated for
 * each node, and the commands that use them. Pasted, they work without an
 * agent, without ~/.ssh/config and without trusting any key on first use.
 *
 * Aliases are the nodes' instance names (`<project>-<stack>-lb`, `-app-N`,
 * `-mon`), which are also their hostnames and Prometheus' `node` label. They
 * are unique across stacks, so several stacks' files can sit side by side, or
 * be `Include`d from ~/.ssh/config, without one alias shadowing another; the
 * commands use `ssh -F`, which reads this file instead of ~/.ssh/config and
 * /etc/ssh/ssh_config, so nothing there changes what they do.
 */

/** A node as ssh reaches it. */
export interface SshNode {
    alias: string;
    /** Where ssh connects: the load balancer's public IP, or a private node's address behind it. */
    address: string;
}

export interface SshKnownNode extends SshNode {
    /** The host's public key as the program pins it: "ssh-ed25519 AAAA...". */
    hostPublicKey: string;
}

export interface SshAccessOptions<N extends SshNode = SshKnownNode> {
    /** Whose hosts these are, for the files' headers: "<project>-<stack>". */
    stack: string;
    user: string;
    /** Absolute, or under ~/: ssh resolves a relative path against wherever the user runs it. */
    keyFile: string;
    knownHostsFile: string;
    /** Reached directly; every other node is reached through it. */
    lb: N;
    privateNodes: N[];
}

const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const ADDRESS = /^[A-Za-z0-9.:-]+$/;
const USER = /^[a-z_][a-z0-9_-]*$/;
// No spaces, quotes, % or $: ssh_config expands %-tokens and ${VAR} in these paths.
const PATH = /^(~\/|\/)[A-Za-z0-9_~/.@+=:,-]*$/;

function check(what: string, value: string, pattern: RegExp, rule: string): string {
    if (!pattern.test(value)) throw new Error(`ssh access: ${what} ${JSON.stringify(value)} ${rule}`);
    return value;
}

function checkNodes(o: Pick<SshAccessOptions<SshNode>, "stack" | "lb" | "privateNodes">): void {
    check("stack", o.stack, ALIAS, "must be a plain name such as pycluster-dev");
    const nodes = [o.lb, ...o.privateNodes];
    for (const n of nodes) {
        check("alias", n.alias, ALIAS, "must be a plain host name (letters, digits, . _ -)");
        check(`address of ${n.alias}`, n.address, ADDRESS, "must be an IP address or a host name");
    }
    for (const key of ["alias", "address"] as const) {
        const seen = nodes.map(n => n[key]);
        const twice = seen.find((v, i) => seen.indexOf(v) !== i);
        if (twice) throw new Error(`ssh access: two nodes have the ${key} ${twice}`);
    }
}

/**
 * ssh_config: per node HostName, User, the stack's key only (IdentitiesOnly:
 * no agent key is offered), the stack's own known_hosts with strict checking
 * (an unknown or changed key is refused, never added), and for private nodes
 * ProxyJump to the load balancer's alias. ProxyJump runs a second ssh for the
 * jump, and given -F, OpenSSH passes the same -F to it (checked with OpenSSH
 * 9.2, `ssh -v -F FILE`: "Setting implicit ProxyCommand from ProxyJump: ssh
 * -F FILE -W '[%h]:%p' <lb alias>"), so the jump uses this file's key and
 * known hosts too; `ssh -i KEY -J ...` gives the jump neither.
 */
export function renderSshConfig(o: SshAccessOptions<SshNode>): string {
    checkNodes(o);
    check("user", o.user, USER, "must be a Linux user name");
    check("key file", o.keyFile, PATH, "must be absolute or under ~/, without spaces, quotes, % or $");
    check("known hosts file", o.knownHostsFile, PATH, "must be absolute or under ~/, without spaces, quotes, % or $");
    const block = (n: SshNode, jump?: string) =>
        [
            `Host ${n.alias}`,
            `    HostName ${n.address}`,
            ...(jump ? [`    ProxyJump ${jump}`] : []),
            `    User ${o.user}`,
            `    IdentityFile ${o.keyFile}`,
            "    IdentitiesOnly yes",
            `    UserKnownHostsFile ${o.knownHostsFile}`,
            "    StrictHostKeyChecking yes",
        ].join("\n");
    return [
        `# SSH to the hosts of ${o.stack} (rendered by pycluster): ssh -F <this file> <alias>`,
        "",
        block(o.lb),
        ...o.privateNodes.map(n => "\n" + block(n, o.lb.alias)),
        "",
    ].join("\n");
}

/** "ssh-ed25519 AAAA... comment" -> ["ssh-ed25519", "AAAA..."], refusing anything else. */
function keyFields(n: SshKnownNode): [string, string] {
    const key = n.hostPublicKey.trim();
    const [type = "", blob = ""] = key.split(/[ \t]+/);
    if (/[\r\n]/.test(key) || !/^[a-z0-9@.-]+$/.test(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) {
        throw new Error(`ssh access: the host key of ${n.alias} is not an OpenSSH public key: ${JSON.stringify(n.hostPublicKey)}`);
    }
    return [type, blob];
}

/**
 * known_hosts: one line per node under the address ssh looks its key up by,
 * the HostName: the public IP for the load balancer, the private IP for a
 * node behind ProxyJump (ssh checks the target's key under its HostName; a
 * proxied connection does no CheckHostIP), with the alias as the comment.
 */
export function renderKnownHosts(o: Pick<SshAccessOptions, "stack" | "lb" | "privateNodes">): string {
    checkNodes(o);
    const line = (n: SshKnownNode) => [n.address, ...keyFields(n), n.alias].join(" ");
    return [`# Host keys of ${o.stack}, generated by the program and pinned on its own connections`, line(o.lb), ...o.privateNodes.map(line), ""].join("\n");
}

/** A path as a shell word that still expands a leading ~/ (quoting it would not). */
function shellPath(p: string): string {
    if (p === "~") return p;
    return p.startsWith("~/") ? `~/${shellQuote(p.slice(2))}` : shellQuote(p);
}

/** `ssh -F <config> [args] <alias>`: everything else comes from the file. */
export function sshCommand(configFile: string, alias: string, args: string[] = []): string {
    return ["ssh", "-F", shellPath(configFile), ...args.map(shellQuote), check("alias", alias, ALIAS, "must be a plain host name")].join(" ");
}

/** Forwards localhost:<port> to <address>:<port> through a node (-N: no remote command). */
export function sshTunnelCommand(configFile: string, alias: string, address: string, port: number): string {
    return sshCommand(configFile, alias, ["-N", "-L", `${port}:${check("address", address, ADDRESS, "must be an IP address")}:${port}`]);
}

export interface SshSetupOptions {
    /** The Pulumi stack the outputs are read from. */
    pulumiStack: string;
    keyFile: string;
    configFile: string;
    knownHostsFile: string;
    /** Output names. */
    outputs: { privateKey: string; config: string; knownHosts: string };
}

/**
 * Writes the stack's key, ssh_config and known_hosts where the commands expect
 * them, reading the outputs with the Pulumi CLI on PATH or else the project's
 * `npx pulumi`. The key goes into a new file created under umask 077 (a file that
 * existed keeps its mode when written to), so it is never readable by others,
 * not even while it is written; chmod still, where a default ACL beats the umask.
 */
export function sshSetupCommand(o: SshSetupOptions): string {
    for (const p of [o.keyFile, o.configFile, o.knownHostsFile]) check("file", p, PATH, "must be absolute or under ~/, without spaces, quotes, % or $");
    const output = (name: string, file: string, secret = false) =>
        `pulumi_cli stack output --stack ${shellQuote(o.pulumiStack)}${secret ? " --show-secrets" : ""} ${shellQuote(name)} > ${shellPath(file)}`;
    const dirs = [...new Set([o.keyFile, o.configFile, o.knownHostsFile].map(p => p.slice(0, p.lastIndexOf("/")) || "/"))];
    return (
        "(umask 077 && " +
        [
            // The CLI as the user has it: installed (`pulumi`), or only the project's npm launcher, run
            // by `npx pulumi` from the project directory as the README does. A function, not a
            // variable: zsh does not split an unquoted "$var" into words.
            `pulumi_cli() { if command -v pulumi >/dev/null 2>&1; then pulumi "$@"; else npx --no-install pulumi "$@"; fi; }`,
            `mkdir -p ${dirs.map(shellPath).join(" ")}`,
            `rm -f ${shellPath(o.keyFile)}`,
            output(o.outputs.privateKey, o.keyFile, true),
            `chmod 600 ${shellPath(o.keyFile)}`,
            output(o.outputs.config, o.configFile),
            output(o.outputs.knownHosts, o.knownHostsFile),
        ].join(" && ") +
        ")"
    );
}
