import { NGINX_SITE_DIR } from "./nginx";

/**
 * nginx's main context (nginx.conf): workers, limits, the JSON access log, and the include of our
 * site directory. The site itself (pycluster/site.conf) is rendered in nginx.ts.
 */

export interface NginxMainOptions {
    workerProcesses: number;
    workerConnections: number;
    workerOpenFiles: number;
}

export const ACCESS_LOG_FILE = "/var/log/nginx/access.log";

/**
 * Fields of the JSON access log: what an operator needs to follow a request to its app node, and what
 * pycluster-access-log-exporter reads (status, request_time, upstream_*; it is told this order).
 */
export const ACCESS_LOG_FIELDS: [string, string, boolean][] = [
    ["time", "$time_iso8601", true],
    ["request_id", "$request_id", true],
    ["remote_addr", "$remote_addr", true],
    ["host", "$host", true],
    ["method", "$request_method", true],
    ["uri", "$request_uri", true],
    ["protocol", "$server_protocol", true],
    ["status", "$status", false],
    ["bytes_sent", "$body_bytes_sent", false],
    ["request_time", "$request_time", false],
    ["upstream_addr", "$upstream_addr", true],
    ["upstream_status", "$upstream_status", true],
    ["upstream_connect_time", "$upstream_connect_time", true],
    ["upstream_header_time", "$upstream_header_time", true],
    ["upstream_response_time", "$upstream_response_time", true],
    ["user_agent", "$http_user_agent", true],
];

export function renderNginxMain(o: NginxMainOptions): string {
    if (o.workerOpenFiles < o.workerConnections) {
        throw new RangeError(`worker_rlimit_nofile (${o.workerOpenFiles}) must cover worker_connections (${o.workerConnections})`);
    }
    const logFormat = ACCESS_LOG_FIELDS.map(([name, variable, quoted]) => (quoted ? `"${name}":"${variable}"` : `"${name}":${variable}`)).join(",");
    return `# nginx main context, rendered by pycluster. Change the stack configuration, not this file.
user www-data;
worker_processes ${o.workerProcesses};
# Each worker may open this many files: client + upstream connections, plus logs.
worker_rlimit_nofile ${o.workerOpenFiles};
pid /run/nginx.pid;
error_log /var/log/nginx/error.log warn;
include /etc/nginx/modules-enabled/*.conf;

events {
    # Counts client AND upstream connections: a proxied request holds two.
    worker_connections ${o.workerConnections};
    multi_accept on;
}

http {
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    types_hash_max_size 2048;
    server_tokens off;
    include mime.types;
    default_type application/octet-stream;

    keepalive_timeout 65s;
    keepalive_requests 1000;
    client_header_timeout 30s;
    client_body_timeout 30s;
    send_timeout 30s;
    reset_timedout_connection on;

    log_format pycluster_json escape=json '{${logFormat}}';
    access_log ${ACCESS_LOG_FILE} pycluster_json buffer=64k flush=1s;

    include ${NGINX_SITE_DIR}/*.conf;
}
`;
}
