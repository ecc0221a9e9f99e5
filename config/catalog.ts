/**
 * What we know about OVHcloud Public Cloud flavors and images. Worker counts,
 * nginx syntax and gunicorn options are derived from these, so a stack only
 * names a flavor and an image.
 */

export interface Flavor {
    vcpus: number;
    ramGb: number;
}

/** OVH Public Cloud flavors (general purpose b2/b3, compute c2/c3, memory r2/r3, discovery d2, sandbox s1). */
export const FLAVORS: Readonly<Record<string, Flavor>> = {
    "b2-7": { vcpus: 2, ramGb: 7 }, "b2-15": { vcpus: 4, ramGb: 15 }, "b2-30": { vcpus: 8, ramGb: 30 },
    "b2-60": { vcpus: 16, ramGb: 60 }, "b2-120": { vcpus: 32, ramGb: 120 },
    "b3-8": { vcpus: 2, ramGb: 8 }, "b3-16": { vcpus: 4, ramGb: 16 }, "b3-32": { vcpus: 8, ramGb: 32 },
    "b3-64": { vcpus: 16, ramGb: 64 }, "b3-128": { vcpus: 32, ramGb: 128 }, "b3-256": { vcpus: 64, ramGb: 256 },
    "c2-7": { vcpus: 2, ramGb: 7 }, "c2-15": { vcpus: 4, ramGb: 15 }, "c2-30": { vcpus: 8, ramGb: 30 },
    "c2-60": { vcpus: 16, ramGb: 60 }, "c2-120": { vcpus: 32, ramGb: 120 },
    "c3-4": { vcpus: 2, ramGb: 4 }, "c3-8": { vcpus: 4, ramGb: 8 }, "c3-16": { vcpus: 8, ramGb: 16 },
    "c3-32": { vcpus: 16, ramGb: 32 }, "c3-64": { vcpus: 32, ramGb: 64 }, "c3-128": { vcpus: 64, ramGb: 128 },
    "r2-15": { vcpus: 2, ramGb: 15 }, "r2-30": { vcpus: 2, ramGb: 30 }, "r2-60": { vcpus: 4, ramGb: 60 },
    "r2-120": { vcpus: 8, ramGb: 120 }, "r2-240": { vcpus: 16, ramGb: 240 },
    "r3-16": { vcpus: 2, ramGb: 16 }, "r3-32": { vcpus: 4, ramGb: 32 }, "r3-64": { vcpus: 8, ramGb: 64 },
    "r3-128": { vcpus: 16, ramGb: 128 }, "r3-256": { vcpus: 32, ramGb: 256 }, "r3-512": { vcpus: 64, ramGb: 512 },
    "d2-2": { vcpus: 1, ramGb: 2 }, "d2-4": { vcpus: 2, ramGb: 4 }, "d2-8": { vcpus: 4, ramGb: 8 },
    "s1-2": { vcpus: 1, ramGb: 2 }, "s1-4": { vcpus: 1, ramGb: 4 }, "s1-8": { vcpus: 2, ramGb: 8 },
};

/** What an image ships: the versions decide the syntax we render. */
export interface Platform {
    sshUser: string;
    /** nginx from the distribution's apt repository. */
    nginxVersion: string;
    /** gunicorn from the distribution's apt repository (package `gunicorn`). */
    gunicornVersion: string;
    /** Dotted path of the ASGI worker class the distribution provides. */
    asgiWorkerClass: string;
}

export const PLATFORMS: Readonly<Record<string, Platform>> = {
    // Debian 12 "bookworm": nginx 1.22.1, gunicorn 20.1.0, python3-uvicorn 0.17.6.
    "Debian 12": { sshUser: "debian", nginxVersion: "1.22.1", gunicornVersion: "20.1.0", asgiWorkerClass: "uvicorn.workers.UvicornWorker" },
    // Debian 13 "trixie": nginx 1.26.3, gunicorn 23.0.0, python3-uvicorn 0.32.
    "Debian 13": { sshUser: "debian", nginxVersion: "1.26.3", gunicornVersion: "23.0.0", asgiWorkerClass: "uvicorn.workers.UvicornWorker" },
};

/** Compares dotted version strings numerically: -1, 0 or 1. */
export function compareVersions(a: string, b: string): number {
    const pa = a.split(".").map(Number);
    const pb = b.split(".").map(Number);
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
        const d = (pa[i] ?? 0) - (pb[i] ?? 0);
        if (d !== 0) return d < 0 ? -1 : 1;
    }
    return 0;
}

/** Gunicorn's documented starting point for the number of workers. */
export function defaultWorkerCount(vcpus: number): number {
    return 2 * vcpus + 1;
}
