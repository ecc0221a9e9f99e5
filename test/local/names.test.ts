/**
 * The pure parts of the local cloud: names, addresses, and the text put onto hosts.
 * No root needed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { nspawnArgv, renderHostFiles, renderSupervisor } from "../../local/host";
import { isUsableAddress, overlaps } from "../../lib/ipv4";
import {
    cloudCidr,
    cloudNames,
    hostAddress,
    MAX_HOSTS,
    MAX_PREFIX_LENGTH,
    privatePlan,
    publicPlan,
    validateHostName,
    validatePrefix,
} from "../../local/names";
import { DEFAULT_PACKAGES, DISABLED_SERVICES, mmdebstrapArgv, rootfsKey } from "../../local/rootfs";
import { APP_PACKAGES } from "../../provisioning/appFiles";
import { LB_PACKAGES } from "../../provisioning/lbFiles";
import { MONITORING_PACKAGES } from "../../provisioning/monitoringFiles";
import { hostKeyAlgorithmsFor, parsePublicKeyLine } from "../../local/ssh";
import { utils } from "ssh2";

test("every interface name fits Linux's 15 characters, even with the longest prefix and host index", () => {
    const n = cloudNames("a".repeat(MAX_PREFIX_LENGTH));
    for (const name of [n.privateBridge, n.publicBridge, n.gatewayVeth, n.clientVeth(50), n.hostPrivateVeth(MAX_HOSTS), n.hostPublicVeth(MAX_HOSTS)]) {
        assert.ok(name.length <= 15, `${name} has ${name.length} characters`);
    }
});

test("names of one cloud never start with another cloud's `<prefix>-`", () => {
    const a = cloudNames("pyc");
    const b = cloudNames("pyctest");
    for (const name of [b.privateBridge, b.gatewayNetns, b.clientNetns(1), b.hostNetns("lb"), b.hostPrivateVeth(1)]) {
        assert.equal(name.startsWith("pyc-"), false, name);
    }
    assert.equal(a.hostNetns("test-x").startsWith("pyctest-"), false);
});

test("prefixes and host names are validated with a message that says what is allowed", () => {
    for (const bad of ["", "Py", "1abc", "a-b", "toolongprefix"]) assert.throws(() => validatePrefix(bad), /lowercase letters or digits/);
    validatePrefix("pyce2e");
    for (const bad of ["Host", "a_b", "-a", "a".repeat(64)]) assert.throws(() => validateHostName(bad), /DNS label/);
    for (const reserved of ["gw", "c1", "c12"]) assert.throws(() => validateHostName(reserved), /reserved/);
    validateHostName("app-0");
});

test("a cloud's networks: normalised, /8 to /30, host addresses counted from the network address", () => {
    const c = cloudCidr("10.77.0.9/24");
    assert.equal(c.text, "10.77.0.0/24");
    assert.equal(hostAddress(c, 1), "10.77.0.1");
    assert.equal(hostAddress(c, 254), "10.77.0.254");
    assert.throws(() => hostAddress(c, 255), /outside/);
    assert.throws(() => hostAddress(c, 0), /outside/);
    assert.equal(isUsableAddress(c, "10.77.0.0"), false);
    assert.equal(isUsableAddress(c, "10.77.0.255"), false);
    assert.equal(isUsableAddress(c, "10.77.1.1"), false);
    assert.equal(isUsableAddress(c, "10.77.0.11"), true);
    assert.throws(() => cloudCidr("10.77.0.0"), /invalid IPv4 CIDR/);
    assert.throws(() => cloudCidr("10.77.0.256/24"), /invalid IPv4 CIDR/);
    assert.throws(() => cloudCidr("192.0.2.7/32"), /prefix length 8-30/);
});

test("the gateway takes the first private address; the deployer, then the clients, the first public ones", () => {
    assert.equal(privatePlan("10.79.0.0/24").gatewayIp, "10.79.0.1");
    const p = publicPlan("198.51.100.0/24", 3);
    assert.equal(p.rootIp, "198.51.100.1");
    assert.deepEqual(p.clientIps, ["198.51.100.2", "198.51.100.3", "198.51.100.4"]);
    assert.equal(p.firstFloatingIndex, 10);
    assert.equal(publicPlan("198.51.100.0/24", 20).firstFloatingIndex, 22);
});

test("overlapping networks are detected", () => {
    assert.equal(overlaps(cloudCidr("10.0.0.0/8"), cloudCidr("10.79.0.0/24")), true);
    assert.equal(overlaps(cloudCidr("10.79.0.0/24"), cloudCidr("10.79.1.0/24")), false);
});

test("host files: hostname in /etc/hosts, apt only from the gateway, NoCloud seed with the user-data verbatim", () => {
    const userData = "#cloud-config\nusers: [default]\n";
    const files = renderHostFiles({ name: "app-0", gatewayIp: "10.77.0.1", userData, instanceId: "i-1", machineId: "ab".repeat(16) });
    assert.match(files["/etc/hosts"], /^127\.0\.1\.1\tapp-0$/m);
    assert.equal(files["/etc/hostname"], "app-0\n");
    const sources = files["/etc/apt/sources.list"].split("\n").filter((l) => l && !l.startsWith("#"));
    assert.deepEqual(sources, ["deb [trusted=yes] http://10.77.0.1/ ./"]);
    assert.equal(files["/var/lib/cloud/seed/nocloud/user-data"], userData);
    assert.equal(files["/var/lib/cloud/seed/nocloud/meta-data"], 'instance-id: "i-1"\nlocal-hostname: "app-0"\n');

    const custom = renderHostFiles({ name: "lb", gatewayIp: "10.77.0.1", userData, metaData: "instance-id: x\n", instanceId: "i-2", machineId: "0".repeat(32) });
    assert.equal(custom["/var/lib/cloud/seed/nocloud/meta-data"], "instance-id: x\n");
});

test("the supervisor joins its cgroup first, boots with nspawn and boots again only after a guest reboot (133)", () => {
    const nspawn = nspawnArgv({ name: "lb", rootDir: "/s/hosts/lb/root", netns: "p-lb", uuid: "u" });
    for (const flag of ["--boot", "--register=no", "--keep-unit", "--network-namespace-path=/run/netns/p-lb", "--directory=/s/hosts/lb/root"]) {
        assert.ok(nspawn.includes(flag), flag);
    }
    const script = renderSupervisor({ name: "lb", cgroupDirs: ["/sys/fs/cgroup/systemd/x", "/sys/fs/cgroup/unified/x"], nspawn, nspawnPidFile: "/s/nspawn.pid" });
    const lines = script.split("\n");
    assert.ok(lines.findIndex((l) => l.includes("cgroup.procs")) < lines.findIndex((l) => l.includes("SYSTEMD_NSPAWN_API_VFS_WRITABLE")));
    assert.match(script, /SYSTEMD_NSPAWN_API_VFS_WRITABLE=network systemd-nspawn/);
    assert.match(script, /\[ "\$rc" = 133 \] \|\| break/);
    assert.match(script, /trap .*kill -TERM "\$child"/);
});

test("the root filesystem cache key ignores package order and changes with the package set", () => {
    assert.equal(rootfsKey(["a", "b"], [], "bookworm"), rootfsKey(["b", "a", "a"], [], "bookworm"));
    assert.notEqual(rootfsKey(["a", "b"], [], "bookworm"), rootfsKey(["a", "b", "c"], [], "bookworm"));
    assert.notEqual(rootfsKey(["a"], [], "bookworm"), rootfsKey(["a"], ["x"], "bookworm"));
});

test("mmdebstrap installs every package and keeps the .debs for the apt repository", () => {
    const argv = mmdebstrapArgv({ suite: "bookworm", rootDir: "/r", packages: DEFAULT_PACKAGES, repoOnlyPackages: [], sourcesArg: "/s.sources", debCache: "/c", archiveOut: "/repo" });
    const include = argv.find((a) => a.startsWith("--include="))!.slice("--include=".length).split(",");
    for (const pkg of ["systemd", "openssh-server", "cloud-init", "nginx", "gunicorn", "python3-gunicorn", "prometheus-node-exporter", "nftables"]) {
        assert.ok(include.includes(pkg), pkg);
    }
    assert.ok(argv.includes("--skip=essential/unlink"));
    assert.ok(argv.includes("--customize-hook=sync-out /var/cache/apt/archives /repo"));
    assert.ok(argv.some((a) => a.includes('rm -f "$1"/etc/ssh/ssh_host_*')), "no host keys baked in");
    assert.deepEqual(argv.slice(-3), ["bookworm", "/r", "/s.sources"]);
});

test("every package a role installs is in the image (the local hosts have no internet); monitoring services start disabled", () => {
    const image = new Set(DEFAULT_PACKAGES);
    for (const pkg of [...LB_PACKAGES, ...APP_PACKAGES, ...Object.values(MONITORING_PACKAGES).flat(), "certbot"]) assert.ok(image.has(pkg), pkg);
    const argv = mmdebstrapArgv({ suite: "bookworm", rootDir: "/r", packages: DEFAULT_PACKAGES, repoOnlyPackages: [], sourcesArg: "/s.sources", debCache: "/c", archiveOut: "/repo" });
    // A host runs the exporters and Prometheus only once the program configured them (private addresses).
    assert.ok(argv.includes(`--customize-hook=chroot "$1" systemctl disable --quiet ${DISABLED_SERVICES.join(" ")}`));
    assert.deepEqual([...DISABLED_SERVICES].sort(), ["prometheus-nginx-exporter.service", "prometheus-node-exporter.service", "prometheus.service"]);
});

test("a pinned host key is parsed from authorized_keys format and selects its algorithm", () => {
    const { public: pub } = utils.generateKeyPairSync("ed25519", { comment: "some comment" });
    const parsed = parsePublicKeyLine(pub);
    assert.equal(parsed.type, "ssh-ed25519");
    assert.deepEqual(hostKeyAlgorithmsFor("ssh-ed25519"), ["ssh-ed25519"]);
    assert.deepEqual(hostKeyAlgorithmsFor("ssh-rsa"), ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    assert.throws(() => parsePublicKeyLine("ssh-rsa " + pub.split(" ")[1]), /invalid hostKey/);
    assert.throws(() => parsePublicKeyLine("not a key"), /invalid hostKey/);
});
