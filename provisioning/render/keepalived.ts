import * as crypto from "crypto";
import { KEEPALIVED_INTERFACE_TOKEN } from "../hostContract";

/**
 * keepalived for a pair of load balancers: VRRP in unicast between the two (no multicast on a
 * Neutron network), both BACKUP with nopreempt so a recovered LB rejoins as backup and the
 * address moves once, not twice. advert_int 1: the backup takes over after 3 missed adverts plus
 * its skew (about 3.6 s), inside the 5 s the pair promises. The health script makes an unhealthy
 * holder FAULT, which releases the address to its peer.
 *
 * The same renderer writes the bootstrap configuration cloud-init starts with (no health script,
 * no notify: nothing to check before the first push, and only the addresses are known) and the
 * full one hostctl installs.
 */

export interface KeepalivedHealth {
    /** Absolute path of the check (exit 0 = healthy), run by keepalived as root. */
    script: string;
    intervalSeconds: number;
    timeoutSeconds: number;
    /** Failures in a row before the holder goes FAULT, successes before it may hold again. */
    fall: number;
    rise: number;
}

export interface KeepalivedOptions {
    /** Whose pair this is, for the header: "<project>-<stack>". */
    cluster: string;
    /** 1-255; the same on both LBs (virtualRouterId). */
    virtualRouterId: number;
    /**
     * The NIC holding ownAddress: ens3 on OVH's Debian, eth0 on local hosts. The program renders the
     * contract's token (KEEPALIVED_INTERFACE_TOKEN) and the host fills in its own NIC.
     */
    interface: string;
    ownAddress: string;
    peerAddress: string;
    vip: string;
    prefixLength: number;
    /** Absent in the bootstrap configuration. */
    health?: KeepalivedHealth;
    /** Absolute path of the script keepalived runs on every state change (records it for metrics). */
    notifyScript?: string;
}

/** The VRRP instance's name, also the one the notify script receives. */
export const VRRP_INSTANCE = "pycluster_lb";
const HEALTH_SCRIPT = "pycluster_lb_health";

/**
 * The health check the pair runs: every 2 s, three failures to FAULT, two successes back. A check
 * may take 10 s before it counts as failed. It is for a broken nginx, not a busy one: a power-off
 * is VRRP's to detect (3 missed adverts), and a FAULT moves the address, which drops every
 * connection the holder has. Under load a check (a Python start and its probes) took over 3 s on
 * a holder in the middle of its nginx reload: with a 3 s timeout that holder let go of the address
 * (and of the program's SSH session through it) although nginx served throughout. The check's own
 * probes wait up to 4 s each (hostctl's vrrp.py), inside these 10 s.
 */
export const PAIR_HEALTH_TIMING = { intervalSeconds: 2, timeoutSeconds: 10, fall: 3, rise: 2 } as const;

/**
 * virtual_router_id from the cluster's name: stable across runs and hosts, different between stacks
 * in the common case (unicast VRRP never reaches another stack's LBs anyway; the id only has to
 * agree between the two peers).
 */
export function virtualRouterId(cluster: string): number {
    return 1 + (crypto.createHash("sha256").update(cluster).digest().readUInt32BE(0) % 255);
}

const ADDRESS = /^\d{1,3}(\.\d{1,3}){3}$/;
const NAME = /^[A-Za-z0-9_.@-]{1,15}$/;
// An absolute command line keepalived splits on spaces: no quotes, no shell syntax.
const SCRIPT = /^\/[A-Za-z0-9_./-]+( [A-Za-z0-9_./=:-]+)*$/;

function check(o: KeepalivedOptions): void {
    const bad = (what: string, value: unknown) => {
        throw new Error(`keepalived: ${what} ${JSON.stringify(value)} is not valid`);
    };
    for (const [what, a] of [["ownAddress", o.ownAddress], ["peerAddress", o.peerAddress], ["vip", o.vip]] as const) if (!ADDRESS.test(a)) bad(what, a);
    if (new Set([o.ownAddress, o.peerAddress, o.vip]).size !== 3) bad("addresses (own, peer and vip must differ)", [o.ownAddress, o.peerAddress, o.vip]);
    if (!Number.isInteger(o.virtualRouterId) || o.virtualRouterId < 1 || o.virtualRouterId > 255) bad("virtualRouterId", o.virtualRouterId);
    if (!Number.isInteger(o.prefixLength) || o.prefixLength < 1 || o.prefixLength > 32) bad("prefixLength", o.prefixLength);
    if (o.interface !== KEEPALIVED_INTERFACE_TOKEN && !NAME.test(o.interface)) bad("interface", o.interface);
    for (const s of [o.health?.script, o.notifyScript]) if (s !== undefined && !SCRIPT.test(s)) bad("script", s);
}

function healthBlock(h: KeepalivedHealth): string[] {
    return [
        `vrrp_script ${HEALTH_SCRIPT} {`,
        `    script "${h.script}"`,
        `    interval ${h.intervalSeconds}`,
        `    timeout ${h.timeoutSeconds}`,
        // weight 0: a failing check puts the instance in FAULT (the holder releases the address).
        "    weight 0",
        `    fall ${h.fall}`,
        `    rise ${h.rise}`,
        "}",
        "",
    ];
}

export function renderKeepalivedConf(o: KeepalivedOptions): string {
    check(o);
    const lines = [
        `# keepalived of ${o.cluster}'s load balancer pair (rendered by pycluster${o.health ? "" : "; bootstrap: addresses only, until the first push"}).`,
        "global_defs {",
        // Scripts run as root only if nobody else can write them or their directories.
        "    enable_script_security",
        "    script_user root",
        "}",
        "",
        ...(o.health ? healthBlock(o.health) : []),
        `vrrp_instance ${VRRP_INSTANCE} {`,
        // Both BACKUP + nopreempt: whoever holds the address keeps it; a recovered peer waits as backup.
        "    state BACKUP",
        "    nopreempt",
        `    interface ${o.interface}`,
        `    virtual_router_id ${o.virtualRouterId}`,
        "    priority 100",
        "    advert_int 1",
        `    unicast_src_ip ${o.ownAddress}`,
        "    unicast_peer {",
        `        ${o.peerAddress}`,
        "    }",
        "    virtual_ipaddress {",
        `        ${o.vip}/${o.prefixLength} dev ${o.interface}`,
        "    }",
        // Announce the move at once and again (the bridge and the router learn the new holder),
        // and refresh it while holding, so a missed announcement heals within seconds.
        "    garp_master_delay 1",
        "    garp_master_repeat 3",
        "    garp_master_refresh 10",
        ...(o.health ? ["    track_script {", `        ${HEALTH_SCRIPT}`, "    }"] : []),
        ...(o.notifyScript ? [`    notify "${o.notifyScript}"`] : []),
        "}",
        "",
    ];
    return lines.join("\n");
}
