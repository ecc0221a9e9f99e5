/** The load balancer's nginx settings, the site's host name (and its A record with dnsZone), and the static files it serves itself. */
import * as path from "path";
import type { Reader } from "./reader";
import type { DnsRecordSettings, ParseContext, StackConfig } from "./types";

const HOSTNAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

export type LoadBalancerSettings = Pick<
    StackConfig["lb"],
    "method" | "upstreamKeepalive" | "upstreamKeepaliveTimeout" | "proxyConnectTimeout" | "proxyReadTimeout" | "clientMaxBodySize" | "domain" | "dnsRecord" | "hstsMaxAge"
>;

/**
 * lbCount: one load balancer, or an active/backup pair sharing the public address (keepalived moves
 * it). Read before the network plan: the pair's addresses are part of it.
 */
export function readLbCount(r: Reader): 1 | 2 {
    const n = r.integer("lbCount", 1, 2, " (1 load balancer, or 2: a pair sharing the public address, docs/pair.md)");
    return n === 2 ? 2 : 1;
}

export function readLoadBalancer(r: Reader): LoadBalancerSettings {
    const method = r.oneOf("lbMethod", ["least_conn", "round_robin", "ip_hash"] as const);
    const upstreamKeepalive = r.integer("upstreamKeepalive", 0, 100_000);
    const upstreamKeepaliveTimeout = r.integer("upstreamKeepaliveTimeout", 1, 3600);
    const proxyConnectTimeout = r.integer("proxyConnectTimeout", 1, 75, " (nginx caps it at 75)");
    const proxyReadTimeout = r.integer("proxyReadTimeout", 1, 86_400);
    const clientMaxBodySize = r.string("clientMaxBodySize");
    if (!/^\d+[kKmMgG]?$/.test(clientMaxBodySize)) r.fail("clientMaxBodySize", clientMaxBodySize, "must be an nginx size such as 10m, 512k or 0 (no limit)");
    const domain = r.string("domain").trim().toLowerCase();
    if (domain !== "" && !HOSTNAME.test(domain)) r.fail("domain", domain, "must be a fully qualified host name such as www.example.com");
    const dnsRecord = readDnsRecord(r, domain);
    const hstsMaxAge = r.integer("hstsMaxAge", 0, 10 * 365 * 86400);
    return { method, upstreamKeepalive, upstreamKeepaliveTimeout, proxyConnectTimeout, proxyReadTimeout, clientMaxBodySize, domain: domain || undefined, dnsRecord, hstsMaxAge };
}

/**
 * dnsZone: the program manages the domain's A record in that zone at OVH. The record's name is the
 * domain's label(s) in the zone, so the domain must be the zone or inside it.
 */
function readDnsRecord(r: Reader, domain: string): DnsRecordSettings | undefined {
    const zone = r.string("dnsZone").trim().toLowerCase().replace(/\.$/, "");
    const ttl = r.integer("dnsRecordTtl", 60, 86400, " (OVH refuses a TTL below 60 s)");
    if (zone === "") return undefined;
    if (!HOSTNAME.test(zone)) {
        r.fail("dnsZone", zone, "must be the name of a DNS zone you have at OVH, such as example.com (Web Cloud > Domains), or empty");
        return undefined;
    }
    if (domain === "") {
        r.fail("dnsZone", zone, `manages the A record of domain, which is not set: set domain to the site's name in ${zone} (e.g. www.${zone}), or leave dnsZone empty`);
        return undefined;
    }
    if (domain !== zone && !domain.endsWith(`.${zone}`)) {
        r.fail(
            "dnsZone",
            zone,
            `does not hold domain ${domain}: set dnsZone to the zone at OVH that ${domain} is in (e.g. ${domain.split(".").slice(-2).join(".")}), ` +
                `or leave it empty and point ${domain}'s A record at the load balancer yourself`,
        );
        return undefined;
    }
    return { zone, subdomain: domain === zone ? "" : domain.slice(0, -(zone.length + 1)), ttl };
}

/** staticUrlPath + staticDir: a directory inside the app that nginx serves at a URL prefix. */
export function readStaticFiles(r: Reader, ctx: ParseContext, appDir: string): StackConfig["lb"]["staticFiles"] {
    const urlPath = r.string("staticUrlPath").trim();
    const dirSetting = r.string("staticDir").trim();
    if (urlPath === "" && dirSetting === "") return undefined;
    if (!/^\/(?:[A-Za-z0-9._~-]+\/)+$/.test(urlPath)) {
        r.fail("staticUrlPath", urlPath, "must be a URL prefix that starts and ends with /, e.g. /static/ (and needs staticDir)");
    }
    const dir = path.resolve(appDir, dirSetting);
    if (dirSetting === "" || path.isAbsolute(dirSetting) || !dir.startsWith(appDir + path.sep)) {
        r.fail("staticDir", dirSetting, "must be a directory inside appDir, given relative to it (e.g. static), and needs staticUrlPath");
    } else if (!ctx.files.isDirectory(dir)) {
        r.fail("staticDir", dirSetting, `is not a directory: ${dir} does not exist`);
    }
    return { urlPath, dir };
}
