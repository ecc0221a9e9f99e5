/**
 * What OVH's DNS zone API accepts for a record (the program's ovh.domain.ZoneRecord), for the
 * local engine: a record it would refuse fails here too, in the middle of the run.
 *
 * Modelled (OVH API `POST /domain/zone/{zoneName}/record`, and terraform-provider-ovh's
 * `ovh_domain_zone_record`, which @ovhcloud/pulumi-ovh's ZoneRecord bridges; its docs and the
 * SDK's zoneRecord.d.ts):
 * - the zone must be one of the account's zones (the API answers 404 "This service does not
 *   exist" for any other);
 * - `fieldtype` is one of the zone's record types, and an A record's `target` an IPv4 address;
 * - `ttl`, when set, "shall be >= to 60";
 * - `subdomain` is relative to the zone ("" is the zone's apex): dot-separated labels of letters,
 *   digits, '-' and '_', at most 63 characters each.
 * A zone may hold several A records of one name: a new record is added beside any other (the
 * provider then refreshes the zone, `POST /domain/zone/{zoneName}/refresh`, so OVH's name servers
 * serve it); deleting one removes only that one.
 */
import { parseIpv4 } from "../lib/ipv4";

export class OvhApiError extends Error {
    constructor(
        readonly status: 400 | 404,
        message: string,
    ) {
        super(`OVH API ${status}: ${message}`);
        this.name = "OvhApiError";
    }
}

const FIELD_TYPES = ["A", "AAAA", "CAA", "CNAME", "DKIM", "DMARC", "DNAME", "LOC", "MX", "NAPTR", "NS", "PTR", "SPF", "SRV", "SSHFP", "TLSA", "TXT"];
const LABEL = /^(?:\*|[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)$/;

/** Throws OvhApiError as the API would answer a ZoneRecord with these inputs, in an account with `zones`. */
export function checkZoneRecord(inputs: Record<string, any>, zones: string[]): void {
    const zone = String(inputs.zone ?? "").toLowerCase();
    if (!zones.includes(zone)) throw new OvhApiError(404, `This service does not exist: zone ${JSON.stringify(inputs.zone)} is not in the account (its zones: ${zones.join(", ") || "none"})`);
    if (!FIELD_TYPES.includes(inputs.fieldtype)) throw new OvhApiError(400, `Invalid fieldType ${JSON.stringify(inputs.fieldtype)}`);
    const sub = String(inputs.subdomain ?? "");
    if (sub !== "" && !sub.split(".").every(l => LABEL.test(l))) throw new OvhApiError(400, `Invalid subDomain ${JSON.stringify(sub)}`);
    if (inputs.fieldtype === "A" && (typeof inputs.target !== "string" || parseIpv4(inputs.target) === undefined)) {
        throw new OvhApiError(400, `Invalid target ${JSON.stringify(inputs.target)} for an A record: an IPv4 address is required`);
    }
    if (inputs.ttl !== undefined && inputs.ttl !== 0 && !(Number.isInteger(inputs.ttl) && inputs.ttl >= 60)) {
        throw new OvhApiError(400, `Invalid ttl ${JSON.stringify(inputs.ttl)}: it shall be >= 60`);
    }
}

/** The name a record answers for. */
export const recordName = (zone: string, subdomain: string | undefined) => (subdomain ? `${subdomain}.${zone}` : zone).toLowerCase();
