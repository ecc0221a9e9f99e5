/**
 * The local "cloud" substrate: Debian 12 hosts booted with systemd-nspawn in network
 * namespaces on this machine, reachable over real SSH. Used by the mocks that run the Pulumi
 * program against local hosts, and by the end-to-end tests.
 */
export { ensureRootfs, DEFAULT_CACHE_DIR, DEFAULT_PACKAGES, RECIPE_VERSION } from "./rootfs";
export type { Rootfs, RootfsOptions } from "./rootfs";
export { LocalCloud, createCloud, destroyCloud, leftoversOf, DEFAULT_STATE_ROOT, DEFAULT_PUBLIC_CIDR } from "./cloud";
export type { CloudOptions, CloudState, BootHostOptions, HostInfo, DestroyReport, CloudLeftovers } from "./cloud";
export { runCommand, copyToRemote, connect, execOn, HostKeyMismatchError, CommandInterruptedError } from "./ssh";
export type { SshConnection, SshProxyConnection, CommandResult, SshSession } from "./ssh";
export { canConnect } from "./network";
export { localCloudPrerequisites } from "./prerequisites";
