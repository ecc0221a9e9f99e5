import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import * as command from "@pulumi/command";
import * as ovh from "@ovhcloud/pulumi-ovh";
import { StackConfig } from "../config/types";
import { lbAddresses, lbExtraPackages, lbKeepalivedConf, lbKeepalivedFiles, lbKernelFiles, lbNginxFiles, lbPackages } from "../provisioning/lbFiles";
import { AppArchive } from "../provisioning/archive";
import { lbMonitoring } from "../provisioning/monitoringFiles";
import { lbRolloutSteps, siteThroughLbUrl, stackRolloutPlan } from "../provisioning/rollout";
import { obtainCertificate, pushKeepalived, pushMonitoring, pushNginx, pushStaticFiles } from "../provisioning/push";
import { ACME_PLACEHOLDER_ORGANIZATION, names, PUBLIC_NETWORK, SELF_SIGNED_ORGANIZATION } from "../lib/conventions";
import { Bastion, Host, NodePlacement, PairMember } from "./host";
import { LbPair } from "./lbPair";

export interface LoadBalancerArgs extends NodePlacement {
    /** Static files nginx serves itself (staticUrlPath), packed from staticDir. */
    staticFiles?: AppArchive;
    /**
     * The app nodes' checks of the same change (created after the LB, hence a promise): nginx
     * changes only once every node validated its part, so a change refused on the nodes never
     * reloads nginx under load for nothing.
     */
    appChecks: Promise<pulumi.Resource>[];
    /** The stack's name ("<project>-<stack>"), which the second LB's name is built from. */
    cluster: string;
}

/** One load balancer and its steps; a pair has two, with identical configuration. */
export interface LbMember {
    host: Host;
    /** Its nginx change: validated, switched, reloaded and checked running. */
    nginx: command.remote.Command;
    monitoring: command.remote.Command;
    /** keepalived's configuration (a pair). */
    keepalived?: command.remote.Command;
    /** certbot's step (tlsMode letsencrypt): each LB of a pair gets its own certificate. */
    letsencrypt?: command.remote.Command;
}

/**
 * The Nginx node: the stack's only public address, TLS termination, and the
 * upstream of every app node. Its certificate comes from @pulumi/tls
 * (selfSigned, and the placeholder before Let's Encrypt issues one) or from
 * the stack's secrets (provided).
 */
export class LoadBalancer extends pulumi.ComponentResource {
    /** The first (or only) load balancer. */
    readonly host: Host;
    /** Every load balancer: one, or the pair (the first keeps the single LB's names). */
    readonly members: LbMember[];
    /** What the pair shares (lbCount 2): the server group and the VIP port. */
    readonly pair?: LbPair;
    /** How every other host is reached: through the public address (whichever LB holds it). */
    readonly bastion: Bastion;
    readonly publicIp: pulumi.Output<string>;
    /** The first LB's nginx change (with a pair, the second's comes after it). */
    readonly nginx: command.remote.Command;
    /** Node exporter, nginx exporter (stub_status) and the access log exporter, on the private address. */
    readonly monitoring: command.remote.Command;
    readonly url: pulumi.Output<string>;
    /** The host name the site answers to (domain, or the public IP). */
    readonly siteHost: pulumi.Output<string>;
    /** The domain's A record in its zone at OVH (dnsZone set). */
    readonly dnsRecord?: ovh.domain.ZoneRecord;
    /** certbot's step (tlsMode letsencrypt) on the first LB; a pair's second has its own (members). */
    readonly letsencrypt?: command.remote.Command;

    constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:lb:LoadBalancer", name, {}, opts);
        const cfg = args.config;
        const pairAddresses = cfg.network.pair;
        this.pair = pairAddresses
            ? new LbPair(name, { region: cfg.openstack.region, networkId: args.networkId, subnet: args.subnet, securityGroupId: args.securityGroupId, vip: pairAddresses.vip }, { parent: this })
            : undefined;
        // The public address reaches either LB of a pair: both show one host key, generated once.
        const pairKey = this.pair ? new tls.PrivateKey(`${name}-pair-hostkey`, { algorithm: "ED25519" }, { parent: this }) : undefined;
        const addresses = lbAddresses(cfg);
        const member = (own: string): PairMember | undefined =>
            this.pair && pairKey
                ? { hostKey: pairKey, serverGroupId: this.pair.serverGroup.id, vip: this.pair.vip, keepalivedConf: lbKeepalivedConf(cfg, own, { bootstrap: true }) }
                : undefined;
        const hostArgs = (own: string) => ({
            region: cfg.openstack.region,
            flavor: cfg.lb.flavor,
            image: cfg.platform.image,
            networkId: args.networkId,
            subnet: args.subnet,
            fixedIp: own,
            securityGroupIds: [args.securityGroupId],
            access: args.access,
            packages: lbPackages(cfg),
            extraPackages: lbExtraPackages(cfg),
            kernelFiles: lbKernelFiles(cfg),
            gateway: args.gateway,
            pair: member(own),
        });
        this.host = new Host(
            name,
            // The address users' DNS points at: a production stack never loses it by accident. A pair's is on the VIP port.
            { ...hostArgs(addresses[0]), publicIp: { pool: PUBLIC_NETWORK, protect: cfg.production, portId: this.pair?.vipPort.id } },
            { parent: this },
        );
        this.publicIp = this.host.publicIp!;
        this.bastion = this.host.publicConnection
            ? { connection: this.host.publicConnection, ready: [this.host.publicAssociation!] }
            : { connection: this.host.connection, ready: [this.host.booted] };
        const hosts = [this.host];
        if (addresses[1]) hosts.push(new Host(names.secondLoadBalancer(args.cluster), { ...hostArgs(addresses[1]), bastion: this.bastion }, { parent: this }));
        // Other hosts relay through the pair once both LBs relay SSH (either may hold the address).
        if (this.pair) this.bastion = { ...this.bastion, ready: [...this.bastion.ready, ...hosts.map(h => h.booted)] };
        this.siteHost = cfg.lb.domain ? pulumi.output(cfg.lb.domain) : this.publicIp;
        this.url = pulumi.interpolate`https://${this.siteHost}/`;

        const certificate = this.certificate(name, cfg);
        this.members = this.configure(cfg, args, hosts, certificate);
        this.nginx = this.members[0].nginx;
        this.monitoring = this.members[0].monitoring;
        if (cfg.lb.dnsRecord) this.dnsRecord = this.domainRecord(name, cfg.lb.dnsRecord);
        if (cfg.lb.tls.mode === "letsencrypt") this.letsencrypt = this.obtainCertificates(cfg);

        this.registerOutputs({ publicIp: this.publicIp, url: this.url });
    }

    /** The domain's A record in its zone at OVH, pointing at the public address. */
    private domainRecord(name: string, record: NonNullable<StackConfig["lb"]["dnsRecord"]>): ovh.domain.ZoneRecord {
        return new ovh.domain.ZoneRecord(
            `${name}-dns`,
            { zone: record.zone, subdomain: record.subdomain, fieldtype: "A", target: this.publicIp, ttl: record.ttl },
            { parent: this },
        );
    }

    /** certbot on every LB (tlsMode letsencrypt), each for its own certificate; the first LB's step. */
    private obtainCertificates(cfg: StackConfig): command.remote.Command {
        // nginx answers the ACME challenge on port 80, with the placeholder certificate on 443 meanwhile.
        // A pair: each LB runs certbot for its own certificate (and renews it itself); the CA's
        // request reaches whichever LB holds the address, which asks its peer for a token it does
        // not have, so every LB's nginx must run that configuration first.
        const nginxEverywhere = this.members.map(m => m.nginx);
        for (const member of this.members) {
            member.letsencrypt = obtainCertificate(
                member.host.target,
                {
                    domain: cfg.lb.domain!,
                    email: cfg.lb.tls.letsencryptEmail!,
                    server: cfg.lb.tls.letsencryptServer,
                    address: this.publicIp,
                    managedRecord: this.dnsRecord !== undefined,
                },
                [...nginxEverywhere, ...(this.dnsRecord ? [this.dnsRecord] : [])],
            );
        }
        return this.members[0].letsencrypt!;
    }

    /**
     * Each LB's configuration, the same for both but their own address: static files, keepalived (a
     * pair), nginx one LB at a time and the holder of the address last (lbRolloutSteps), and the
     * exporters once nginx runs.
     */
    private configure(cfg: StackConfig, args: LoadBalancerArgs, hosts: Host[], certificate: pulumi.Output<{ certPem: string; keyPem: string } | undefined>): LbMember[] {
        const leaseSeconds = stackRolloutPlan(cfg).drainLeaseSeconds;
        const prepared = hosts.map(host => {
            const own = host.privateIp;
            const files = pulumi.all([this.publicIp, certificate]).apply(([publicIp, cert]) => lbNginxFiles(cfg, { publicIp, privateIp: own, certificate: cert }));
            const before = args.staticFiles ? [pushStaticFiles(host.target, cfg.app.name, args.staticFiles, [host.ready])] : [];
            const keepalived = this.pair ? pushKeepalived(host.target, lbKeepalivedFiles(cfg, own), own, [host.ready]) : undefined;
            return { host, files, before, keepalived };
        });
        const plan = lbRolloutSteps(hosts.length);
        const steps: command.remote.Command[] = [];
        for (const s of plan) {
            const { host, files, before, keepalived } = prepared[s.lb];
            const pair = this.pair
                ? this.siteHost.apply(siteHost => ({
                      deferIfHolder: s.deferIfHolder,
                      checkUrl: `http://${host.privateIp}:${cfg.lb.statusPort}/stub_status`,
                      siteUrl: siteThroughLbUrl(cfg.app.healthPath),
                      siteHost,
                  }))
                : undefined;
            // The bundle carries the TLS private key.
            steps.push(
                pushNginx(
                    host.target,
                    files,
                    true,
                    cfg.app.healthPath,
                    leaseSeconds,
                    [host.ready, ...before, ...(keepalived ? [keepalived] : []), ...args.appChecks, ...s.after.map(k => steps[k])],
                    { suffix: s.suffix, pair },
                ),
            );
        }
        return prepared.map(({ host, keepalived }, i) => {
            // The LB's last nginx step: from then on it runs this change.
            const nginx = steps.filter((_, k) => plan[k].lb === i).pop()!;
            // stub_status and the JSON access log exist once nginx runs our configuration.
            const monitoring = pushMonitoring(host.target, lbMonitoring(cfg, host.privateIp), [nginx]);
            return { host, nginx, monitoring, keepalived };
        });
    }

    private certificate(name: string, cfg: StackConfig): pulumi.Output<{ certPem: string; keyPem: string } | undefined> {
        if (cfg.lb.tls.mode === "provided") {
            return pulumi.secret({ certPem: cfg.lb.tls.certificate!, keyPem: cfg.lb.tls.privateKey!.reveal() });
        }
        // selfSigned, and the placeholder nginx starts with before certbot replaces it.
        const key = new tls.PrivateKey(`${name}-tls-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
        const cert = new tls.SelfSignedCert(
            `${name}-tls-cert`,
            {
                privateKeyPem: key.privateKeyPem,
                subject: {
                    commonName: cfg.lb.domain ?? `${cfg.project}-${cfg.stack}`,
                    // The policy pack tells the placeholder from a self-signed site by this.
                    organization: cfg.lb.tls.mode === "letsencrypt" ? ACME_PLACEHOLDER_ORGANIZATION : SELF_SIGNED_ORGANIZATION,
                },
                dnsNames: cfg.lb.domain ? [cfg.lb.domain] : [],
                ipAddresses: this.publicIp.apply(ip => [ip]),
                validityPeriodHours: 24 * 365,
                earlyRenewalHours: 24 * 30,
                allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
            },
            { parent: this },
        );
        return pulumi.secret(pulumi.all([cert.certPem, key.privateKeyPem]).apply(([certPem, keyPem]) => ({ certPem, keyPem })));
    }
}
