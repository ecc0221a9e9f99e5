import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    checkAppNodesPrivate,
    checkExplicitSecurityGroups,
    checkImagePinned,
    checkProductionStack,
    checkPublicAddressesOnlyOnLb,
    checkSecurityGroupsManaged,
    checkWorldIngressOnlyOnLb,
    checkWorldOpenIngress,
    ResourceDescription,
    TYPES,
    UNKNOWN,
} from "../../policy/rules";
import { isPublicAddress } from "../../lib/ipv4";
import { ACME_PLACEHOLDER_ORGANIZATION } from "../../lib/conventions";

const STACK = "urn:pulumi:dev::pycluster::";

function resource(type: string, name: string, props: Record<string, any>, extra: Partial<ResourceDescription> = {}): ResourceDescription {
    return { type, name, urn: `${STACK}${type}::${name}`, props, ...extra };
}

const ingress = (name: string, props: Record<string, any>, extra: Partial<ResourceDescription> = {}) =>
    resource(TYPES.secGroupRule, name, { direction: "ingress", ethertype: "IPv4", ...props }, extra);

const lbGroup = resource(TYPES.secGroup, "lb-group", { name: "pycluster-dev-lb", id: "sg-lb" });
const appGroup = resource(TYPES.secGroup, "app-group", { name: "pycluster-dev-app", id: "sg-app" });

const appInstance = (name: string, props: Record<string, any> = {}) =>
    resource(TYPES.instance, name, { name, imageName: "Debian 12", networks: [{ port: `port-${name}` }], ...props });

describe("rule 1: no ingress from anywhere but web ports on the load balancer", () => {
    it("lets HTTPS from 0.0.0.0/0 through the resource check", () => {
        const https = ingress("lb-https", { protocol: "tcp", portRangeMin: 443, portRangeMax: 443, remoteIpPrefix: "0.0.0.0/0" });
        assert.deepEqual(checkWorldOpenIngress(https), []);
    });

    it("ignores rules restricted to a CIDR or a remote group, and egress", () => {
        assert.deepEqual(checkWorldOpenIngress(ingress("admin-ssh", { protocol: "tcp", portRangeMin: 22, portRangeMax: 22, remoteIpPrefix: "203.0.113.0/24" })), []);
        assert.deepEqual(checkWorldOpenIngress(ingress("from-lb", { protocol: "tcp", portRangeMin: 8000, portRangeMax: 8000, remoteGroupId: "sg-lb" })), []);
        assert.deepEqual(checkWorldOpenIngress(resource(TYPES.secGroupRule, "out", { direction: "egress", remoteIpPrefix: "0.0.0.0/0" })), []);
    });

    it("flags a rule with no port range open to 0.0.0.0/0", () => {
        const all = ingress("app-all", { remoteIpPrefix: "0.0.0.0/0" });
        assert.deepEqual(checkWorldOpenIngress(all), [
            'Security group rule "app-all" opens every protocol and port to 0.0.0.0/0: only TCP 80 and 443 ' +
                "may be open to the world, and only on the load balancer's group; give it a remoteIpPrefix " +
                "or a remoteGroupId.",
        ]);
    });

    it("treats no remoteIpPrefix and no remoteGroupId as any source", () => {
        const noSource = ingress("app-gunicorn", { protocol: "tcp", portRangeMin: 8000, portRangeMax: 8000 });
        assert.deepEqual(checkWorldOpenIngress(noSource), [
            'Security group rule "app-gunicorn" opens TCP port 8000 to any source (no remoteIpPrefix and no ' +
                "remoteGroupId): only TCP 80 and 443 may be open to the world, and only on the load balancer's " +
                "group; give it a remoteIpPrefix or a remoteGroupId.",
        ]);
    });

    it("flags ::/0 and port ranges that merely include 80", () => {
        const range = ingress("lb-range", { ethertype: "IPv6", protocol: "tcp", portRangeMin: 80, portRangeMax: 443, remoteIpPrefix: "::/0" });
        assert.deepEqual(checkWorldOpenIngress(range), [
            'Security group rule "lb-range" opens TCP ports 80-443 to ::/0: only TCP 80 and 443 may be open ' +
                "to the world, and only on the load balancer's group; give it a remoteIpPrefix or a remoteGroupId.",
        ]);
    });

    it("flags SSH from anywhere without the opt-in, accepts it with the marker", () => {
        const ssh = { protocol: "tcp", portRangeMin: 22, portRangeMax: 22, remoteIpPrefix: "0.0.0.0/0" };
        assert.deepEqual(checkWorldOpenIngress(ingress("lb-ssh", ssh)), [
            'Security group rule "lb-ssh" opens TCP port 22 (SSH) to 0.0.0.0/0 without the allowSshFromAnywhere ' +
                "opt-in: restrict remoteIpPrefix to the admin CIDRs, or set pycluster:allowSshFromAnywhere true " +
                "(the program then marks the rule's description).",
        ]);
        const optedIn = ingress("lb-ssh", { ...ssh, description: "SSH from anywhere (allowSshFromAnywhere)" });
        assert.deepEqual(checkWorldOpenIngress(optedIn), []);
    });

    it("decides nothing on values unknown during preview", () => {
        assert.deepEqual(checkWorldOpenIngress(ingress("pending", { remoteIpPrefix: UNKNOWN })), []);
        assert.deepEqual(checkWorldOpenIngress(ingress("pending", { remoteIpPrefix: "0.0.0.0/0", portRangeMin: UNKNOWN })), []);
    });

    it("stack check: web ports from anywhere on the -lb group pass", () => {
        const https = ingress("lb-https", { protocol: "tcp", portRangeMin: 443, portRangeMax: 443, remoteIpPrefix: "0.0.0.0/0", securityGroupId: "sg-lb" });
        assert.deepEqual(checkWorldIngressOnlyOnLb([lbGroup, appGroup, https]), []);
    });

    it("stack check: web ports from anywhere on the app group are a violation", () => {
        const http = ingress("app-http", { protocol: "tcp", portRangeMin: 80, portRangeMax: 80, remoteIpPrefix: "0.0.0.0/0", securityGroupId: "sg-app" });
        assert.deepEqual(checkWorldIngressOnlyOnLb([lbGroup, appGroup, http]), [{
            message: 'Security group rule "app-http" opens TCP port 80 to 0.0.0.0/0 on group "pycluster-dev-app": ' +
                "world-open ingress is allowed only on the load balancer's group (name ending \"-lb\").",
            urn: http.urn,
        }]);
    });

    it("stack check: follows the dependency when the group id is unknown (preview)", () => {
        const pending = (group: ResourceDescription) => ingress("https", {
            protocol: "tcp", portRangeMin: 443, portRangeMax: 443, remoteIpPrefix: "0.0.0.0/0", securityGroupId: UNKNOWN,
        }, { propertyDependencies: { securityGroupId: [group.urn!] } });
        const unknownIds = [lbGroup, appGroup].map(g => ({ ...g, props: { ...g.props, id: UNKNOWN } }));
        assert.deepEqual(checkWorldIngressOnlyOnLb([...unknownIds, pending(unknownIds[0])]), []);
        assert.deepEqual(checkWorldIngressOnlyOnLb([...unknownIds, pending(unknownIds[1])]).map(v => v.message), [
            'Security group rule "https" opens TCP port 443 to 0.0.0.0/0 on group "pycluster-dev-app": ' +
                "world-open ingress is allowed only on the load balancer's group (name ending \"-lb\").",
        ]);
    });

    it("stack check: a group this stack does not manage is a violation", () => {
        const foreign = ingress("https", { protocol: "tcp", portRangeMin: 443, portRangeMax: 443, remoteIpPrefix: "0.0.0.0/0", securityGroupId: "sg-default" });
        assert.deepEqual(checkWorldIngressOnlyOnLb([lbGroup, foreign]).map(v => v.message), [
            'Security group rule "https" opens TCP port 443 to 0.0.0.0/0 on security group sg-default, which this ' +
                "stack does not manage: world-open ingress is allowed only on the load balancer's group (name ending \"-lb\").",
        ]);
    });
});

describe("rule 2: app nodes have no public address", () => {
    const appPort = (props: Record<string, any>) =>
        resource(TYPES.port, "app-0-port", { name: "pycluster-dev-app-0-port", networkId: "net-private", securityGroupIds: ["sg-app"], ...props });

    it("accepts an app port on the private network with a private fixed IP", () => {
        assert.deepEqual(checkAppNodesPrivate(appPort({ fixedIps: [{ subnetId: "subnet", ipAddress: "10.10.0.11" }] })), []);
    });

    it("flags an app port on Ext-Net with a public fixed IP", () => {
        const port = appPort({ networkId: "Ext-Net", fixedIps: [{ ipAddress: "51.68.1.2" }] });
        assert.deepEqual(checkAppNodesPrivate(port), [
            'App port "pycluster-dev-app-0-port" is on the public network Ext-Net: app nodes live on the private ' +
                "network only; the load balancer is their only way in.",
            'App port "pycluster-dev-app-0-port" asks for the public address 51.68.1.2: app nodes get private addresses only.',
        ]);
    });

    it("does not apply to the load balancer's port", () => {
        const lbPort = resource(TYPES.port, "lb-port", { name: "pycluster-dev-lb-port", networkId: "Ext-Net" });
        assert.deepEqual(checkAppNodesPrivate(lbPort), []);
    });

    it("flags an app instance on Ext-Net or with a floating IP", () => {
        const onExtNet = appInstance("pycluster-dev-app-1", { networks: [{ name: "Ext-Net" }], floatingIp: "51.68.1.3" });
        assert.deepEqual(checkAppNodesPrivate(onExtNet), [
            'App instance "pycluster-dev-app-1" is attached to the public network Ext-Net: app nodes attach only ' +
                "through their private port.",
            'App instance "pycluster-dev-app-1" requests a floating IP: only the load balancer has a public address.',
        ]);
        assert.deepEqual(checkAppNodesPrivate(appInstance("pycluster-dev-app-1")), []);
    });

    const lbPort = resource(TYPES.port, "lb-port", { name: "pycluster-dev-lb-port", id: "port-lb", allFixedIps: ["10.10.0.10"] });
    const appPortOut = resource(TYPES.port, "app-0-port", { name: "pycluster-dev-app-0-port", id: "port-app-0", allFixedIps: ["10.10.0.11"] });

    it("stack check: a floating IP on the LB's port passes", () => {
        const fip = resource(TYPES.floatingIpAssociate, "lb-fip", { floatingIp: "51.68.1.1", portId: "port-lb" });
        assert.deepEqual(checkPublicAddressesOnlyOnLb([lbPort, appPortOut, fip]), []);
    });

    it("stack check: a pair's one floating IP, on its VIP port (a port of the lb role), passes", () => {
        const vipPort = resource(TYPES.port, "lb-vip-port", { name: "pycluster-dev-lb-vip-port", id: "port-lb-vip", allFixedIps: ["10.10.0.126"] });
        const fip = resource(TYPES.floatingIpAssociate, "lb-fip", { floatingIp: "51.68.1.1", portId: "port-lb-vip" });
        assert.deepEqual(checkPublicAddressesOnlyOnLb([lbPort, vipPort, appPortOut, fip]), []);
    });

    it("stack check: a floating IP on an app port is a violation", () => {
        const fip = resource(TYPES.floatingIpAssociate, "app-fip", { floatingIp: "51.68.1.1", portId: "port-app-0" });
        assert.deepEqual(checkPublicAddressesOnlyOnLb([lbPort, appPortOut, fip]), [{
            message: 'Floating IP association "app-fip" targets port "pycluster-dev-app-0-port": only the load ' +
                "balancer's port may have a floating IP.",
            urn: fip.urn,
        }]);
    });

    it("stack check: resolves the port through dependencies when its id is unknown", () => {
        const pendingPorts = [lbPort, appPortOut].map(p => ({ ...p, props: { ...p.props, id: UNKNOWN } }));
        const fip = resource(TYPES.floatingIpAssociate, "app-fip", { portId: UNKNOWN }, { propertyDependencies: { portId: [appPortOut.urn!] } });
        assert.deepEqual(checkPublicAddressesOnlyOnLb([...pendingPorts, fip]).map(v => v.message), [
            'Floating IP association "app-fip" targets port "pycluster-dev-app-0-port": only the load ' +
                "balancer's port may have a floating IP.",
        ]);
    });

    it("stack check: an app instance that ended up with a public address is a violation", () => {
        const app = appInstance("pycluster-dev-app-0", { accessIpV4: "51.68.1.9", networks: [{ port: "port-app-0", fixedIpV4: "51.68.1.9" }] });
        assert.deepEqual(checkPublicAddressesOnlyOnLb([app]), [{
            message: 'App instance "pycluster-dev-app-0" has the public address 51.68.1.9: app nodes must be reachable ' +
                "only through the load balancer.",
            urn: app.urn,
        }]);
    });

    it("classifies addresses", () => {
        for (const ip of ["10.1.2.3", "172.31.0.1", "192.168.1.1", "100.64.0.1", "169.254.1.1", "fd00::1", "fe80::1"]) {
            assert.equal(isPublicAddress(ip), false, ip);
        }
        for (const ip of ["51.68.1.2", "8.8.8.8", "172.32.0.1", "2001:41d0::1"]) assert.equal(isPublicAddress(ip), true, ip);
    });
});

describe("rule 3: every instance has an explicit security group", () => {
    it("accepts an instance attached through a port, and a port with its group", () => {
        assert.deepEqual(checkExplicitSecurityGroups(appInstance("pycluster-dev-app-0")), []);
        assert.deepEqual(checkExplicitSecurityGroups(resource(TYPES.port, "p", { name: "pycluster-dev-app-0-port", securityGroupIds: ["sg-app"] })), []);
        assert.deepEqual(checkExplicitSecurityGroups(resource(TYPES.port, "p", { securityGroupIds: [UNKNOWN] })), []);
    });

    it("flags an instance attached by network, and one using the default group", () => {
        const byNetwork = appInstance("pycluster-dev-app-0", { networks: [{ uuid: "net-private" }], securityGroups: ["default"] });
        assert.deepEqual(checkExplicitSecurityGroups(byNetwork), [
            'Instance "pycluster-dev-app-0" attaches to network net-private without a port: OpenStack then creates a ' +
                "port in the default security group; attach it through networks[].port.",
            'Instance "pycluster-dev-app-0" uses the "default" security group, which allows everything on OVH: attach ' +
                "the role's own group to its port instead.",
        ]);
    });

    it("flags an instance with no networks", () => {
        assert.deepEqual(checkExplicitSecurityGroups(appInstance("x", { networks: [] })), [
            'Instance "x" lists no networks: it would be attached to the project\'s networks with the default ' +
                "security group; attach it through a port.",
        ]);
    });

    it("flags a port without groups or with noSecurityGroups", () => {
        assert.deepEqual(checkExplicitSecurityGroups(resource(TYPES.port, "p", { name: "pycluster-dev-lb-port", noSecurityGroups: true })), [
            'Port "pycluster-dev-lb-port" sets noSecurityGroups: every port needs its role\'s group.',
            'Port "pycluster-dev-lb-port" has no securityGroupIds: OpenStack would put it in the default group, ' +
                "which allows everything on OVH.",
        ]);
    });

    const port = resource(TYPES.port, "app-0-port", { name: "pycluster-dev-app-0-port", id: "port-app-0", securityGroupIds: ["sg-app"] });

    it("stack check: ports and groups of this stack pass", () => {
        const app = appInstance("pycluster-dev-app-0", { networks: [{ port: "port-app-0" }] });
        assert.deepEqual(checkSecurityGroupsManaged([appGroup, port, app]), []);
    });

    it("stack check: a group or port not managed by the stack is a violation", () => {
        const withDefault = { ...port, props: { ...port.props, securityGroupIds: ["sg-app", "sg-default"] } };
        const app = appInstance("pycluster-dev-app-0", { networks: [{ port: "port-elsewhere" }] });
        assert.deepEqual(checkSecurityGroupsManaged([appGroup, withDefault, app]), [
            {
                message: 'Port "pycluster-dev-app-0-port" uses security group sg-default, which this stack does not ' +
                    "manage (OVH's default group allows everything): use the role's group from the program.",
                urn: port.urn,
            },
            {
                message: 'Instance "pycluster-dev-app-0" attaches port port-elsewhere, which this stack does not manage: ' +
                    "its security groups cannot be checked; create the port in the program.",
                urn: app.urn,
            },
        ]);
    });

    it("stack check: ids explained by dependencies are not reported", () => {
        const noIdGroup = { ...appGroup, props: { name: "pycluster-dev-app" } };
        const p = { ...port, propertyDependencies: { securityGroupIds: [appGroup.urn!] } };
        assert.deepEqual(checkSecurityGroupsManaged([noIdGroup, p]), []);
    });
});

describe("rule 4: production stacks", () => {
    const cert = resource(TYPES.selfSignedCert, "lb-cert", { validityPeriodHours: 8760 });
    const two = [appInstance("pycluster-prod-app-0"), appInstance("pycluster-prod-app-1")];

    it("accepts two app instances and no self-signed certificate", () => {
        assert.deepEqual(checkProductionStack(two, "prod", false), []);
    });

    it("does not apply to other stacks", () => {
        assert.deepEqual(checkProductionStack([appInstance("pycluster-dev-app-0"), cert], "dev", false), []);
    });

    it("flags one app instance and a self-signed certificate in prod", () => {
        const lb = resource(TYPES.instance, "lb", { name: "pycluster-prod-lb", imageId: "img" });
        assert.deepEqual(checkProductionStack([lb, two[0], cert], "prod", false), [
            {
                message: 'Production stack "prod" has 1 app instance(s): at least 2 are required so one can fail or ' +
                    "roll out while the other serves (pycluster:appNodeCount).",
            },
            {
                message: 'Production stack "prod" uses the self-signed certificate "lb-cert": set pycluster:tlsMode to ' +
                    "letsencrypt or provided.",
                urn: cert.urn,
            },
        ]);
    });

    it("accepts the placeholder nginx starts with in letsencrypt mode, not a self-signed site", () => {
        const placeholder = resource(TYPES.selfSignedCert, "lb-cert", { subject: { organization: ACME_PLACEHOLDER_ORGANIZATION } });
        assert.deepEqual(checkProductionStack([placeholder, ...two], "prod", false), []);
        const selfSigned = resource(TYPES.selfSignedCert, "lb-cert", { subject: { organization: "pycluster self-signed" } });
        assert.equal(checkProductionStack([selfSigned, ...two], "prod", false).length, 1);
    });

    it("applies to a stack named production, or any stack with pycluster:production true", () => {
        assert.equal(checkProductionStack([cert, ...two], "Production", false).length, 1);
        assert.equal(checkProductionStack([cert, ...two], "eu-live", true).length, 1);
    });
});

describe("rule 5: images pinned or their name change ignored", () => {
    it("accepts an image id, or an image name with ignoreChanges", () => {
        assert.deepEqual(checkImagePinned(resource(TYPES.instance, "lb", { name: "pycluster-dev-lb", imageId: "5a1b-..." })), []);
        assert.deepEqual(checkImagePinned({ ...appInstance("pycluster-dev-app-0"), opts: { ignoreChanges: ["imageName"] } }), []);
        const bootVolume = resource(TYPES.instance, "db", { blockDevices: [{ sourceType: "image", uuid: "5a1b" }] });
        assert.deepEqual(checkImagePinned(bootVolume), []);
    });

    it("flags an image name that may change under the instance", () => {
        assert.deepEqual(checkImagePinned({ ...appInstance("pycluster-dev-app-0"), opts: { ignoreChanges: ["userData"] } }), [
            'Instance "pycluster-dev-app-0" boots from imageName "Debian 12" without ignoreChanges: ["imageName"]: ' +
                "when OVH renames or refreshes the image, the next up replaces the instance and wipes its disk. Set " +
                "imageId, or add the imageName to ignoreChanges.",
        ]);
    });

    it("flags an instance with no image at all", () => {
        assert.deepEqual(checkImagePinned(resource(TYPES.instance, "bare", {})), ['Instance "bare" names no image (imageId or imageName).']);
    });
});
