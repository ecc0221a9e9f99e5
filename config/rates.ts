/**
 * What one vCPU and one in-flight request cost, measured by `npm run bench`
 * (its calibration and its steps) and kept here as data, with when, where and
 * how. The capacity model (config/capacity.ts) multiplies these by a flavor's
 * vCPUs to predict the rates a stack can carry, so `preview` can refuse a
 * target the CPUs cannot sustain. A figure is only as good as the machine it
 * was measured on: re-run the bench on the machine class you deploy to and
 * replace the figures (the bench prints them in this shape).
 */

export interface RatesProvenance {
    /** UTC date of the bench run. */
    date: string;
    /** CPU, vCPUs, memory, virtualisation: what "one core" means here. */
    machine: string;
    /** Software the figures depend on. */
    software: string;
    /** The bench run the figures come from (a file under bench/results/). */
    source: string;
    /** How each figure was derived. */
    method: string;
}

export interface MeasuredRates {
    provenance: RatesProvenance;
    /**
     * New TLS connections (full handshake, ECDSA P-256, TLS 1.3, one short request each) one
     * core of the load balancer completes per second: nginx's CPU only, the clients' excluded.
     */
    tlsHandshakesPerLbCore: number;
    /** Requests on kept-alive client connections one load-balancer core proxies per second (TLS, upstream keepalive). */
    proxiedRequestsPerLbCore: number;
    /**
     * Requests one app core serves per second: the bundled sample app's `/` on a gevent worker
     * (a worker is one process: it uses at most one core). Your app costs what it costs: measure
     * it and set appRequestsPerCore.
     */
    sampleAppRequestsPerCore: number;
    /** Memory per in-flight request held by nginx (proportional set size over the requests in flight). */
    lbBytesPerInFlight: number;
    /** Memory per in-flight request held by the gunicorn workers of the sample app (gevent). */
    appBytesPerInFlight: number;
    /** Kernel memory per TCP connection (socket, file, buffers), on whichever host holds it. */
    kernelBytesPerSocket: number;
}

/** The figures the model uses. */
export const MEASURED_RATES: MeasuredRates = {
    provenance: {
        date: "2026-12-02",
        machine:
            "2 vCPUs (AMD EPYC, Firecracker VM), 24 GiB, Linux 6.18, shared by the load generators, the load balancer and 4 app nodes (systemd-nspawn hosts)",
        software: "Debian 12: nginx 1.22.1, OpenSSL 3.0, gunicorn 20.1.0, python3-gevent 22.10.2; clients h2load 1.52.0",
        source: "bench/results/2026-12-02T22-21-43-664Z.json (npm run bench -- --configs generated --steps 10k,50k --refine 0)",
        method:
            "rates: the bench's calibration, requests answered per second over the cores the LB (or the app nodes) used meanwhile, every CPU busy; " +
            "memory: growth of each component over the 50,000 step / 50,000 requests in flight; kernel: slab + TCP buffers over every socket the step opened " +
            "(these local hosts also keep a conntrack entry per connection for their emulated security groups); " +
            "gunicorn's figure replaced on 2026-12-03: that step started with what the 10,000 step had left in the workers, so it counted too little; " +
            "15,360 = 15.0 KiB, what a fresh gevent worker takes per held request (npm run bench:memory, 3 runs) and what the full runs of 2026-12-03 give from the configuration's baseline (14.2-15.0 KiB)",
    },
    tlsHandshakesPerLbCore: 1688,
    proxiedRequestsPerLbCore: 8723,
    sampleAppRequestsPerCore: 4317,
    lbBytesPerInFlight: 24_299,
    appBytesPerInFlight: 15_360,
    kernelBytesPerSocket: 5181,
};
