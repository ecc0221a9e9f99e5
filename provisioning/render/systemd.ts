import { unitValue } from "./quote";

/**
 * The sandbox every service of ours starts from: no privileges to gain or keep, a read-only system,
 * no home, devices or kernel knobs. Units add what their service may or may not do on top.
 */
export const SANDBOX: readonly string[] = [
    `NoNewPrivileges=yes`,
    `CapabilityBoundingSet=`,
    `AmbientCapabilities=`,
    `ProtectSystem=strict`,
    `ProtectHome=yes`,
    `PrivateTmp=yes`,
    `PrivateDevices=yes`,
    `DevicePolicy=closed`,
    `ProtectKernelTunables=yes`,
    `ProtectKernelModules=yes`,
];

export interface AppUnitOptions {
    appName: string;
    /** System user and group the app runs as (never root). */
    user: string;
    /** The `current` release symlink. */
    appRoot: string;
    /** Python of the release's venv, reached through `current`. */
    python: string;
    configPath: string;
    envFilePath: string;
    /** module:callable */
    appModule: string;
    gracefulTimeout: number;
    openFiles: number;
    /** Unit ordered before the app, applying the kernel settings at boot. */
    after: string[];
}

/**
 * The app's service: gunicorn under systemd, unprivileged and sandboxed.
 * The sandbox keeps `systemd-analyze security` exposure low; the app can
 * write only to its StateDirectory (/var/lib/<app>) and its private /tmp.
 */
export function renderAppUnit(o: AppUnitOptions): string {
    if (o.user === "root") throw new Error("the app must not run as root");
    const stopTimeout = o.gracefulTimeout + 15;
    return [
        `[Unit]`,
        `Description=${unitValue(`${o.appName}: gunicorn (rendered by pycluster)`)}`,
        `After=network-online.target ${o.after.join(" ")}`.trimEnd(),
        `Wants=network-online.target`,
        ``,
        `[Service]`,
        `# gunicorn tells systemd when its master is ready to accept.`,
        `Type=notify`,
        `NotifyAccess=main`,
        `User=${unitValue(o.user)}`,
        `Group=${unitValue(o.user)}`,
        `WorkingDirectory=${unitValue(o.appRoot)}`,
        `EnvironmentFile=${unitValue(o.envFilePath)}`,
        `Environment=PYTHONUNBUFFERED=1 APP_STATE_DIR=/var/lib/${o.appName}`,
        `ExecStart=${unitValue(`${o.python} -m gunicorn --config ${o.configPath} ${o.appModule}`)}`,
        `# HUP: re-read the config, start new workers, let the old ones finish their requests.`,
        `ExecReload=/bin/kill -s HUP $MAINPID`,
        `# SIGTERM to the master only; it stops its workers gracefully within graceful_timeout.`,
        `KillMode=mixed`,
        `TimeoutStopSec=${stopTimeout}`,
        `Restart=always`,
        `RestartSec=5s`,
        `LimitNOFILE=${o.openFiles}`,
        `StateDirectory=${unitValue(o.appName)}`,
        `UMask=0027`,
        ``,
        `# Sandbox`,
        ...SANDBOX,
        `ProtectKernelLogs=yes`,
        `ProtectControlGroups=yes`,
        `ProtectClock=yes`,
        `ProtectHostname=yes`,
        `ProtectProc=invisible`,
        `ProcSubset=pid`,
        `RestrictNamespaces=yes`,
        `RestrictRealtime=yes`,
        `RestrictSUIDSGID=yes`,
        `RemoveIPC=yes`,
        `LockPersonality=yes`,
        `RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX`,
        `SystemCallArchitectures=native`,
        `SystemCallFilter=@system-service`,
        `SystemCallFilter=~@privileged`,
        // gunicorn workers call setuid() to their own user; without capabilities that changes nothing.
        `SystemCallFilter=@setuid`,
        ``,
        `[Install]`,
        `WantedBy=multi-user.target`,
        ``,
    ].join("\n");
}

/** A drop-in raising a service's open-file limit (services ignore limits.conf). */
export function renderLimitDropIn(openFiles: number): string {
    return [`# Rendered by pycluster: connections are file descriptors.`, `[Service]`, `LimitNOFILE=${openFiles}`, ``].join("\n");
}

export interface SysctlUnitOptions {
    /** The sysctl drop-in this unit applies. */
    sysctlFile: string;
    /** Services that must start with the settings in place. */
    before: string[];
}

/**
 * A oneshot that applies our sysctl file at boot before the services.
 * systemd-sysctl.service skips itself where /proc/sys is not fully writable
 * (containers); this unit applies what the kernel accepts and logs the rest.
 */
export function renderSysctlUnit(o: SysctlUnitOptions): string {
    return [
        `[Unit]`,
        `Description=Kernel settings for high concurrency (rendered by pycluster)`,
        `DefaultDependencies=no`,
        `After=systemd-modules-load.service`,
        `Before=${o.before.join(" ")}`,
        ``,
        `[Service]`,
        `Type=oneshot`,
        `RemainAfterExit=yes`,
        `ExecStart=/lib/systemd/systemd-sysctl ${unitValue(o.sysctlFile)}`,
        ``,
        `[Install]`,
        `WantedBy=multi-user.target`,
        ``,
    ].join("\n");
}

/**
 * On the load balancer: return nodes whose drain lease has expired, once
 * healthy (a drain whose admit step never ran must not last forever).
 */
export function renderDrainExpiryUnits(hostctl: string): { service: string; timer: string } {
    return {
        service: [
            `[Unit]`,
            `Description=Return drained app nodes whose lease expired (rendered by pycluster)`,
            `After=nginx.service`,
            ``,
            `[Service]`,
            `Type=oneshot`,
            `ExecStart=/usr/bin/python3 ${unitValue(hostctl)} upstream expire`,
            ``,
        ].join("\n"),
        timer: [`[Unit]`, `Description=Check drain leases every 30 s`, ``, `[Timer]`, `OnBootSec=30s`, `OnUnitActiveSec=30s`, `AccuracySec=5s`, ``, `[Install]`, `WantedBy=timers.target`, ``].join("\n"),
    };
}
