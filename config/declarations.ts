import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";

/** One key of the `config:` block of Pulumi.yaml. */
export interface KeyDeclaration {
    type: "string" | "integer" | "boolean" | "array";
    description: string;
    /** Absent for keys every stack must set (vlanId, adminCidrs). */
    default?: string | number | boolean | string[];
}

export interface ProjectDeclarations {
    project: string;
    keys: Record<string, KeyDeclaration>;
}

export const PROJECT_FILE = path.join(__dirname, "..", "Pulumi.yaml");

/**
 * Reads the project name and the typed key declarations from Pulumi.yaml.
 * The CLI applies these defaults itself; under mocks nobody does, so the
 * config module applies them from here: Pulumi.yaml stays the one source.
 */
export function loadDeclarations(file: string = PROJECT_FILE): ProjectDeclarations {
    const doc = parse(fs.readFileSync(file, "utf8")) as { name: string; config?: Record<string, KeyDeclaration> };
    return { project: doc.name, keys: doc.config ?? {} };
}
