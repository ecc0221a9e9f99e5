import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import * as command from "@pulumi/command";
import * as ovh from "@ovhcloud/pulumi-ovh";
import { StackConfig } from "../config/types";
import { LB_PACKAGES, lbExtraPackages, lbKernelFiles, lbNginxFiles } from "../provisioning/lbFiles";
import { AppArchive } from "../provisioning/archive";
import { lbMonitoring } from "../provisioning/monitoringFiles";
import { stackRolloutPlan } from "../provisioning/rollout";
import { obtainCertificate, pushMonitoring, pushNginx, pushStaticFiles } from "../provisioning/push";
import { ACME_PLACEHOLDER_ORGANIZATION, PUBLIC_NETWORK, SELF_SIGNED_ORGANIZATION } from "../lib/conventions";
import { Host, NodePlacement } from "./host";

export interface LoadBalancerArgs extends NodePlacement {
    /** Static files nginx serves itself (staticUrlPath), packed from staticDir. */
    staticFiles?: AppArchive;
    /**
     * The app nodes' checks of the same change (created after the LB, hence a promise): nginx
     * changes only once every node validated its part, so a change refused on the nodes never
     * reloads nginx under load for nothing.
     */
    appChecks: Promise<pulumi.Resource>[];
}

/**
 * The Nginx node: the stack's only public address, TLS termination, and the
 * upstream of every app node. Its certificate comes from @pulumi/tls
 * (selfSigned, and the placeholder before Let's Encrypt issues one) or from
 * the stack's secrets (provided).
 */
export class LoadBalancer extends pulumi.ComponentResource {
    readonly host: Host;
    readonly publicIp: pulumi.Output<string>;
    readonly nginx: command.remote.Command;
    /** Node exporter, nginx exporter (stub_status) and mtail (the access log), on the private address. */
    readonly monitoring: command.remote.Command;
    readonly url: pulumi.Output<string>;
    /** The host name the site answers to (domain, or the public IP). */
    readonly siteHost: pulumi.Output<string>;
    /** The domain's A record in its zone at OVH (dnsZone set). */
    readonly dnsRecord?: ovh.domain.ZoneRecord;
    /** certbot's step (tlsMode letsencrypt). */
    readonly letsencrypt?: command.remote.Command;

    constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:lb:LoadBalancer", name, {}, opts);
        const cfg = args.config;
        this.host = new Host(
            name,
            {
                region: cfg.openstack.region,
                flavor: cfg.lb.flavor,
                image: cfg.platform.image,
                networkId: args.networkId,
                subnet: args.subnet,
                fixedIp: cfg.network.lbIp,
                securityGroupIds: [args.securityGroupId],
                access: args.access,
                packages: LB_PACKAGES,
                extraPackages: lbExtraPackages(cfg),
                kernelFiles: lbKernelFiles(cfg),
                gateway: args.gateway,
                // The address users' DNS points at: a production stack never loses it by accident.
                publicIp: { pool: PUBLIC_NETWORK, protect: cfg.production },
            },
            { parent: this },
        );
        this.publicIp = this.host.publicIp!;
        this.siteHost = cfg.lb.domain ? pulumi.output(cfg.lb.domain) : this.publicIp;
        this.url = pulumi.interpolate`https://${this.siteHost}/`;

        const certificate = this.certificate(name, cfg);
        const files = pulumi.all([this.publicIp, certificate]).apply(([publicIp, cert]) => lbNginxFiles(cfg, { publicIp, certificate: cert }));
        const before = args.staticFiles ? [pushStaticFiles(this.host.target, cfg.app.name, args.staticFiles, [this.host.ready])] : [];
        // The bundle carries the TLS private key.
        this.nginx = pushNginx(this.host.target, files, true, cfg.app.healthPath, stackRolloutPlan(cfg).drainLeaseSeconds, [this.host.ready, ...before, ...args.appChecks]);
        // stub_status and the JSON access log exist once nginx runs our configuration.
        this.monitoring = pushMonitoring(this.host.target, lbMonitoring(cfg), [this.nginx]);
        if (cfg.lb.dnsRecord) {
            const record = cfg.lb.dnsRecord;
            this.dnsRecord = new ovh.domain.ZoneRecord(
                `${name}-dns`,
                { zone: record.zone, subdomain: record.subdomain, fieldtype: "A", target: this.publicIp, ttl: record.ttl },
                { parent: this },
            );
        }
        if (cfg.lb.tls.mode === "letsencrypt") {
            // nginx answers the ACME challenge on port 80, with the placeholder certificate on 443 meanwhile.
            this.letsencrypt = obtainCertificate(
                this.host.target,
                {
                    domain: cfg.lb.domain!,
                    email: cfg.lb.tls.letsencryptEmail!,
                    server: cfg.lb.tls.letsencryptServer,
                    address: this.publicIp,
                    managedRecord: this.dnsRecord !== undefined,
                },
                [this.nginx, ...(this.dnsRecord ? [this.dnsRecord] : [])],
            );
        }

        this.registerOutputs({ publicIp: this.publicIp, url: this.url });
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
