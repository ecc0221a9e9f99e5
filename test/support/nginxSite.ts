/** What the nginx tests share: one site's options as the program would size them, and a block reader. */
import assert from "node:assert/strict";
import { NginxSiteOptions } from "../../provisioning/render/nginx";

export const SITE: NginxSiteOptions = {
    appName: "webapp",
    nginxVersion: "1.22.1",
    upstreams: [
        { address: "10.120.0.3", port: 8000 },
        { address: "10.120.0.4", port: 8000 },
    ],
    method: "least_conn",
    keepalive: 128,
    keepaliveTimeout: 60,
    connectTimeout: 5,
    readTimeout: 75,
    clientMaxBodySize: "10m",
    serverNames: ["203.0.113.50"],
    hasDomain: false,
    listenBacklog: 12500,
    hstsMaxAge: 63072000,
    statusListen: { address: "127.0.0.1", port: 8080 },
    statusAllow: ["10.120.0.0/24", "127.0.0.1"],
    nextUpstreamTries: 3,
    overload: { requestRate: 12000, requestBurst: 12000, perNodeConnections: 30000, retryAfterSeconds: 1 },
};

/** The rendered block that starts where `head` matches, whole (through its closing brace). */
export function block(text: string, head: RegExp | string): string {
    const start = typeof head === "string" ? text.indexOf(head) : text.search(head);
    assert.ok(start >= 0, `no block ${head}`);
    let depth = 0;
    for (let i = text.indexOf("{", start); i < text.length; i++) {
        if (text[i] === "{") depth++;
        if (text[i] === "}" && --depth === 0) return text.slice(start, i + 1);
    }
    throw new Error("unbalanced");
}
