import { StackConfig } from "../config/types";
import { hostPath } from "./hostContract";
import { BundleFile } from "./render/bundle";
import { renderGunicornConfig } from "./render/gunicornConfig";
import { renderEnvFile } from "./render/kernel";
import { renderAppUnit } from "./render/systemd";
import { kernelFiles } from "./kernelFiles";
import { monitoringPorts, statsdAddress } from "./monitoringFiles";

/** Where things live on an app node. */
export function appLayout(app: string) {
    return {
        root: hostPath("appCurrent", { app }),
        python: hostPath("appPython", { app }),
        config: hostPath("appConfig", { app }),
        envFile: hostPath("appEnv", { app }),
        unit: `${app}.service`,
    };
}

/**
 * Packages of every app node. The same for every configuration: they are in the cloud-init user data,
 * and OpenStack rebuilds an instance whose user data changes (switching appKind must not wipe the
 * nodes). Both worker kinds are installed; nftables lets a node drain itself while it changes.
 */
export const APP_PACKAGES = ["gunicorn", "python3-venv", "python3-gevent", "python3-uvicorn", "nftables"];

export function appKernelFiles(cfg: StackConfig): BundleFile[] {
    return kernelFiles(cfg, [cfg.app.port, ...monitoringPorts(cfg, "app")], [appLayout(cfg.app.name).unit]);
}

export interface AppNodeRuntime {
    /** The node's private address: gunicorn binds here only. */
    nodeIp: string;
    /** The app's environment (secret), already parsed from appEnv. */
    env?: Record<string, string | number | boolean>;
}

/** gunicorn.conf.py, the unit and (with appEnv) the env file for one app node. */
export function appNodeFiles(cfg: StackConfig, rt: AppNodeRuntime): BundleFile[] {
    const layout = appLayout(cfg.app.name);
    const g = cfg.gunicorn;
    const files: BundleFile[] = [
        {
            name: "gunicorn.conf.py",
            mode: 0o640,
            content: renderGunicornConfig({
                appName: cfg.app.name,
                bindAddress: rt.nodeIp,
                port: cfg.app.port,
                appRoot: layout.root,
                workerClass: g.workerClass,
                workers: g.workers,
                workerConnections: g.workerConnections,
                backlog: g.backlog,
                timeout: g.timeout,
                gracefulTimeout: g.gracefulTimeout,
                keepalive: g.keepalive,
                maxRequests: g.maxRequests,
                maxRequestsJitter: g.maxRequestsJitter,
                // Both LBs of a pair forward requests (X-Forwarded-For is trusted from them only).
                forwardedAllowIps: cfg.network.pair ? [cfg.network.lbIp, cfg.network.pair.secondLbIp] : [cfg.network.lbIp],
                accessLog: cfg.app.accessLog,
                gunicornVersion: cfg.platform.gunicornVersion,
                // Per-request metrics cost app CPU on every request: only when asked for (the LB's access log has them).
                statsdHost: cfg.monitoring.appStatsd ? statsdAddress(cfg) : undefined,
            }),
        },
        {
            name: layout.unit,
            mode: 0o644,
            content: renderAppUnit({
                appName: cfg.app.name,
                user: cfg.app.name,
                appRoot: layout.root,
                python: layout.python,
                configPath: layout.config,
                envFilePath: layout.envFile,
                appModule: cfg.app.module,
                gracefulTimeout: g.gracefulTimeout,
                openFiles: g.openFiles,
                after: ["pycluster-sysctl.service"],
            }),
        },
    ];
    files.push({ name: "env", mode: 0o600, content: renderEnvFile(rt.env ?? {}) });
    return files;
}
