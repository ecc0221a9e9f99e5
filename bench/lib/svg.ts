/**
 * The results chart as a standalone SVG: two panels sharing a logarithmic
 * concurrency axis, failed requests (%) on the left and p99 latency beyond
 * the simulated wait on the right, one line per configuration. Pure: data in,
 * text out.
 */

export interface ChartPoint {
    /** Concurrent in-flight requests of the step. */
    concurrency: number;
    /** Requests that did not get a 2xx answer, as a percentage of the step's requests. */
    failedPct: number;
    /** p99 latency minus the hold, seconds; undefined when nothing was answered. */
    p99ExcessS?: number;
}

export interface ChartSeries {
    name: string;
    points: ChartPoint[];
}

export interface ChartInput {
    title: string;
    subtitle?: string;
    series: ChartSeries[];
}

const COLORS = ["#1b7837", "#c2410c", "#6d28d9", "#0369a1", "#b91c1c", "#4d7c0f"];
const PANEL_W = 420;
const PANEL_H = 260;
const MARGIN = { left: 62, right: 20, top: 70, bottom: 58 };
const GAP = 70;

export function escapeXml(s: string): string {
    return s.replace(/[<>&"']/g, c => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** Ticks 1, 2, 5 x 10^k covering [lo, hi] on a log axis. */
export function logTicks(lo: number, hi: number): number[] {
    const ticks: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        for (const m of [1, 2, 5]) {
            const v = m * 10 ** e;
            if (v >= lo && v <= hi) ticks.push(v);
        }
    }
    return ticks;
}

/** A "nice" upper bound (1, 2, 2.5, 5 x 10^k) at or above v, and its tick step. */
export function niceMax(v: number): { max: number; step: number } {
    if (!(v > 0)) return { max: 1, step: 0.25 };
    const e = Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) {
        const max = m * 10 ** e;
        if (max >= v) return { max, step: max / 4 };
    }
    return { max: 10 ** (e + 1), step: 10 ** (e + 1) / 4 };
}

export function formatCount(n: number): string {
    if (n >= 1000 && n % 1000 === 0) return `${n / 1000}k`;
    if (n >= 1000) return `${(n / 1000).toFixed(1)}k`;
    return String(n);
}

const fmt = (n: number) => (Math.round(n * 10) / 10).toString();
/** Tick values as they are (0.25, not 0.3): steps are 1, 2, 2.5 or 5 x 10^k. */
export const tickLabel = (v: number) => String(Number(v.toPrecision(3)));

export function renderChart(input: ChartInput): string {
    const all = input.series.flatMap(s => s.points);
    const xs = all.map(p => p.concurrency).filter(x => x > 0);
    const xLo = xs.length ? Math.min(...xs) : 1;
    const xHi = xs.length ? Math.max(...xs) : 10;
    // Pad the log range a little so end points sit inside the frame.
    const lx0 = Math.log10(xLo) - 0.08;
    const lx1 = Math.log10(Math.max(xHi, xLo * 10 ** 0.5)) + 0.08;
    const p99Max = niceMax(Math.max(0, ...all.map(p => p.p99ExcessS ?? 0)));
    const width = MARGIN.left + PANEL_W + GAP + PANEL_W + MARGIN.right;
    const height = MARGIN.top + PANEL_H + MARGIN.bottom + 22 * Math.ceil(input.series.length / 3);
    const out: string[] = [];
    out.push(
        `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
        `<rect width="100%" height="100%" fill="#ffffff"/>`,
        `<text x="${MARGIN.left}" y="24" font-size="16" font-weight="bold">${escapeXml(input.title)}</text>`,
    );
    if (input.subtitle) out.push(`<text x="${MARGIN.left}" y="44" fill="#555">${escapeXml(input.subtitle)}</text>`);

    const panels = [
        { key: "failed", title: "failed requests (% of the step)", yMax: 100, yStep: 25, unit: "%", value: (p: ChartPoint) => p.failedPct },
        { key: "p99", title: "p99 latency beyond the hold (s)", yMax: p99Max.max, yStep: p99Max.step, unit: "s", value: (p: ChartPoint) => p.p99ExcessS },
    ];
    panels.forEach((panel, i) => {
        const x0 = MARGIN.left + i * (PANEL_W + GAP);
        const y0 = MARGIN.top;
        const sx = (c: number) => x0 + ((Math.log10(c) - lx0) / (lx1 - lx0)) * PANEL_W;
        const sy = (v: number) => y0 + PANEL_H - (Math.min(Math.max(v, 0), panel.yMax) / panel.yMax) * PANEL_H;
        out.push(`<g class="panel-${panel.key}">`);
        out.push(`<text x="${x0}" y="${y0 - 10}" font-weight="bold">${escapeXml(panel.title)}</text>`);
        out.push(`<rect x="${x0}" y="${y0}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#999"/>`);
        for (let v = 0; v <= panel.yMax + 1e-9; v += panel.yStep) {
            const y = sy(v);
            out.push(`<line x1="${x0}" y1="${fmt(y)}" x2="${x0 + PANEL_W}" y2="${fmt(y)}" stroke="#eee"/>`);
            out.push(`<text x="${x0 - 6}" y="${fmt(y + 4)}" text-anchor="end" fill="#555">${tickLabel(v)}${panel.unit}</text>`);
        }
        for (const t of logTicks(10 ** lx0, 10 ** lx1)) {
            const x = sx(t);
            out.push(`<line x1="${fmt(x)}" y1="${y0}" x2="${fmt(x)}" y2="${y0 + PANEL_H}" stroke="#eee"/>`);
            out.push(`<text x="${fmt(x)}" y="${y0 + PANEL_H + 16}" text-anchor="middle" fill="#555">${formatCount(t)}</text>`);
        }
        out.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 + PANEL_H + 36}" text-anchor="middle">concurrent in-flight requests (log scale)</text>`);
        input.series.forEach((s, si) => {
            const color = COLORS[si % COLORS.length];
            const pts = [...s.points]
                .sort((a, b) => a.concurrency - b.concurrency)
                .filter(p => p.concurrency > 0 && panel.value(p) !== undefined)
                .map(p => ({ x: sx(p.concurrency), y: sy(panel.value(p)!), p }));
            if (pts.length > 1) {
                out.push(`<polyline class="series" data-series="${escapeXml(s.name)}" fill="none" stroke="${color}" stroke-width="2" points="${pts.map(q => `${fmt(q.x)},${fmt(q.y)}`).join(" ")}"/>`);
            }
            for (const q of pts) {
                const v = panel.value(q.p)!;
                out.push(
                    `<circle cx="${fmt(q.x)}" cy="${fmt(q.y)}" r="3.5" fill="${color}"><title>${escapeXml(s.name)}: ${q.p.concurrency} in flight, ${fmt(v)}${panel.unit}</title></circle>`,
                );
            }
        });
        out.push(`</g>`);
    });
    // Legend under the panels.
    input.series.forEach((s, si) => {
        const col = si % 3;
        const row = Math.floor(si / 3);
        const x = MARGIN.left + col * 220;
        const y = MARGIN.top + PANEL_H + MARGIN.bottom + row * 22;
        out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 24}" y2="${y - 4}" stroke="${COLORS[si % COLORS.length]}" stroke-width="3"/>`);
        out.push(`<text x="${x + 30}" y="${y}">${escapeXml(s.name)}</text>`);
    });
    out.push(`</svg>`);
    return out.join("\n") + "\n";
}
