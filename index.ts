import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import * as ovh from "@ovhcloud/pulumi-ovh";
import { readStackConfig } from "./config/read";
import { Cluster, DEFAULT_BUILD_DIR } from "./components/cluster";
import { stackOutputs } from "./components/outputs";
import { names } from "./lib/conventions";

/**
 * The program: read and validate the stack configuration (nothing is created
 * when it is wrong), build the cluster with explicit providers, export outputs.
 */
export = async () => {
    const config = readStackConfig();
    for (const warning of config.warnings) pulumi.log.warn(warning);

    // Explicit providers: credentials come from this stack's config or the
    // variables config/read.ts documents, never from whatever openrc is sourced.
    const ovhProvider = new ovh.Provider("ovh", {
        endpoint: config.ovh.endpoint,
        applicationKey: config.ovh.applicationKey,
        applicationSecret: pulumi.secret(config.ovh.applicationSecret.reveal()),
        consumerKey: pulumi.secret(config.ovh.consumerKey.reveal()),
    });
    const openstackProvider = new openstack.Provider("openstack", {
        authUrl: config.openstack.authUrl,
        region: config.openstack.region,
        tenantId: config.openstack.tenantId,
        userName: config.openstack.userName,
        password: pulumi.secret(config.openstack.password.reveal()),
        userDomainName: "Default",
        projectDomainName: "Default",
    });

    const cluster = new Cluster(names.cluster(config.project, config.stack), { config, buildDir: DEFAULT_BUILD_DIR }, { providers: [ovhProvider, openstackProvider] });
    return stackOutputs(config, cluster);
};
