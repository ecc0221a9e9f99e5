import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { loadDeclarations } from "./declarations";
import { LOCAL_FILES } from "./files";
import { RawConfig, StackConfig } from "./types";
import { parseStackConfig } from "./stackConfig";

// The SDK knows which keys were set with --secret but has no public API for it. Internal modules
// can change in any minor release: package.json pins @pulumi/pulumi with ~ for this one.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const runtimeConfig = require("@pulumi/pulumi/runtime/config") as { isConfigSecret(fullKey: string): boolean };

export const SAMPLE_APP_DIR = path.join(__dirname, "..", "provisioning", "app", "sample");

/**
 * Reads this project's keys from the running stack and returns the validated
 * settings, or throws a ConfigError listing every problem. Called before any
 * resource is registered, so a bad value never creates half a cluster.
 */
export function readStackConfig(): StackConfig {
    const declarations = loadDeclarations();
    // runtime.allConfig() includes keys nobody declared, so typos are caught too.
    const raw = projectValues(declarations.project, pulumi.runtime.allConfig(), key => runtimeConfig.isConfigSecret(key));
    return parseStackConfig(raw, {
        declarations,
        stack: pulumi.getStack(),
        env: process.env,
        sampleAppDir: SAMPLE_APP_DIR,
        files: LOCAL_FILES,
    });
}

/** This project's keys (without the "project:" prefix) out of the whole configuration, and which are secret. */
export function projectValues(project: string, all: Record<string, string>, isSecret: (fullKey: string) => boolean): RawConfig {
    const prefix = `${project}:`;
    const values: Record<string, string> = {};
    const secretKeys = new Set<string>();
    for (const [fullKey, value] of Object.entries(all)) {
        if (!fullKey.startsWith(prefix)) continue;
        values[fullKey.slice(prefix.length)] = value;
        if (isSecret(fullKey)) secretKeys.add(fullKey.slice(prefix.length));
    }
    return { values, secretKeys };
}
