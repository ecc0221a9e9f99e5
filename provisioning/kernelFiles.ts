import { StackConfig } from "../config/types";
import { bundleDestinations } from "./hostContract";
import { BundleFile } from "./render/bundle";
import { renderSysctl } from "./render/kernel";
import { renderLimitDropIn, renderSysctlUnit } from "./render/systemd";

/** Where hostctl installs the kernel bundle's sysctl.conf (the contract's kernel files). */
export const SYSCTL_FILE = bundleDestinations("kernel")["sysctl.conf"];

/**
 * Kernel settings for one host, sized from the stack's target concurrency.
 * `listeningPorts` stay out of the ephemeral range; `services` start after them.
 */
export function kernelFiles(cfg: StackConfig, listeningPorts: number[], services: string[], nginxOpenFiles?: number): BundleFile[] {
    const k = cfg.kernel;
    const files: BundleFile[] = [
        {
            name: "sysctl.conf",
            mode: 0o644,
            content: renderSysctl({
                somaxconn: k.somaxconn,
                synBacklog: k.synBacklog,
                netdevBacklog: k.netdevBacklog,
                localPortRange: k.localPortRange,
                reservedPorts: listeningPorts.filter(p => p >= k.localPortRange[0]),
                fileMax: k.fileMax,
                nrOpen: k.nrOpen,
            }),
        },
        { name: "pycluster-sysctl.service", mode: 0o644, content: renderSysctlUnit({ sysctlFile: SYSCTL_FILE, before: services }) },
    ];
    if (nginxOpenFiles !== undefined) files.push({ name: "nginx-limits.conf", mode: 0o644, content: renderLimitDropIn(nginxOpenFiles) });
    return files;
}
