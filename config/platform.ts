/**
 * What runs on the nodes: the image (and the versions it ships, which decide
 * the syntax the renderers write) and the flavors (whose vCPUs size workers).
 */
import { compareVersions, FLAVORS, PLATFORMS } from "./catalog";
import type { Reader } from "./reader";
import type { StackConfig } from "./types";

const VERSION = /^\d+\.\d+(?:\.\d+)?$/;

export function readPlatform(r: Reader): StackConfig["platform"] {
    const image = r.string("image").trim();
    if (image === "") r.fail("image", image, `must name an image, e.g. "Debian 12"`);
    const known = PLATFORMS[image];
    const override = (key: "sshUser" | "nginxVersion" | "gunicornVersion", fallback: string | undefined): string => {
        const v = r.string(key).trim();
        if (v !== "") {
            if (key !== "sshUser" && !VERSION.test(v)) r.fail(key, v, "must be a version such as 1.22.1");
            if (key === "sshUser" && !/^[a-z_][a-z0-9_-]*$/.test(v)) r.fail(key, v, "must be a Linux user name such as debian");
            return v;
        }
        if (fallback === undefined && image !== "") {
            r.fail("image", image, `is not a known image (${Object.keys(PLATFORMS).join(", ")}): also set ${key}`);
        }
        return fallback ?? "";
    };
    const platform = {
        image,
        sshUser: override("sshUser", known?.sshUser),
        nginxVersion: override("nginxVersion", known?.nginxVersion),
        gunicornVersion: override("gunicornVersion", known?.gunicornVersion),
        asgiWorkerClass: known?.asgiWorkerClass ?? "uvicorn.workers.UvicornWorker",
    };
    if (platform.nginxVersion && VERSION.test(platform.nginxVersion) && compareVersions(platform.nginxVersion, "1.18.0") < 0) {
        r.fail("nginxVersion", platform.nginxVersion, "nginx older than 1.18 is not supported (TLS 1.3 and upstream zones are assumed)");
    }
    if (platform.gunicornVersion && VERSION.test(platform.gunicornVersion) && compareVersions(platform.gunicornVersion, "20.0.0") < 0) {
        r.fail("gunicornVersion", platform.gunicornVersion, "gunicorn older than 20.0 is not supported");
    }
    return platform;
}

/** A node flavor and its vCPUs: from the built-in table, or the stack's override for flavors it does not know. */
export function readFlavor(r: Reader, flavorKey: "lbFlavor" | "appFlavor", vcpuKey: "lbVcpus" | "appVcpus"): { flavor: string; vcpus: number } {
    const flavor = r.string(flavorKey).trim();
    const override = r.integer(vcpuKey, 0, 512);
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(flavor)) r.fail(flavorKey, flavor, "must be an OVH flavor name such as b3-8, c3-16 or d2-4");
    const table = FLAVORS[flavor];
    if (override > 0) return { flavor, vcpus: override };
    if (!table) {
        if (flavor) r.fail(flavorKey, flavor, `is not in the built-in flavor table: set ${vcpuKey} to its vCPU count`);
        return { flavor, vcpus: 1 };
    }
    return { flavor, vcpus: table.vcpus };
}
