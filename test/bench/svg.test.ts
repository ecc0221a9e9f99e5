import { test } from "node:test";
import assert from "node:assert/strict";
import { escapeXml, formatCount, logTicks, niceMax, renderChart, tickLabel } from "../../bench/lib/svg";

const input = {
    title: "pycluster bench <local> & co",
    subtitle: "2 CPUs",
    series: [
        {
            name: "generated (held 50000)",
            points: [
                { concurrency: 10_000, failedPct: 0, p99ExcessS: 0.4 },
                { concurrency: 50_000, failedPct: 0, p99ExcessS: 2.2 },
                { concurrency: 75_000, failedPct: 38.5, p99ExcessS: 9.7 },
            ],
        },
        { name: "seed (held 770)", points: [{ concurrency: 770, failedPct: 0, p99ExcessS: 0.2 }, { concurrency: 10_000, failedPct: 80, p99ExcessS: undefined }] },
        { name: "stock (held 0)", points: [{ concurrency: 500, failedPct: 92 }] },
    ],
};

test("the chart is one standalone SVG document with both panels", () => {
    const svg = renderChart(input);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="\d+" height="\d+" viewBox="0 0 \d+ \d+"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.match(svg, /class="panel-failed"/);
    assert.match(svg, /class="panel-p99"/);
    // Balanced elements: every opened g/text/circle is closed.
    for (const tag of ["g", "text", "circle", "title"]) {
        const open = (svg.match(new RegExp(`<${tag}[ >]`, "g")) ?? []).length;
        const close = (svg.match(new RegExp(`</${tag}>`, "g")) ?? []).length;
        assert.equal(open, close, tag);
    }
});

test("one line per configuration with two or more points in a panel, a marker per point", () => {
    const svg = renderChart(input);
    const lines = [...svg.matchAll(/<polyline class="series" data-series="([^"]+)"/g)].map(m => m[1]);
    // failed panel: generated and seed have lines (stock has one point); p99 panel: only generated (seed's 10k has no p99).
    assert.deepEqual(lines, ["generated (held 50000)", "seed (held 770)", "generated (held 50000)"]);
    assert.equal((svg.match(/<circle /g) ?? []).length, 6 + 4);
});

test("text is escaped", () => {
    const svg = renderChart(input);
    assert.ok(svg.includes("pycluster bench &lt;local&gt; &amp; co"));
    assert.equal(escapeXml(`a"b'c`), "a&quot;b&apos;c");
});

test("points are placed on a log axis: 10x more concurrency is the same distance everywhere", () => {
    const svg = renderChart({ title: "t", series: [{ name: "s", points: [100, 1000, 10_000].map(c => ({ concurrency: c, failedPct: 0 })) }] });
    const xs = [...svg.matchAll(/<circle cx="([\d.]+)" cy="[\d.]+" r="3.5" fill="[^"]+"><title>s:/g)].map(m => Number(m[1])).slice(0, 3);
    assert.equal(xs.length, 3);
    assert.ok(Math.abs(xs[1] - xs[0] - (xs[2] - xs[1])) < 0.2, `${xs}`);
});

test("an empty chart still renders", () => {
    assert.match(renderChart({ title: "nothing", series: [] }), /<\/svg>/);
});

test("axis helpers: 1-2-5 log ticks, nice maxima, short counts", () => {
    assert.deepEqual(logTicks(300, 120_000), [500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000]);
    assert.deepEqual(niceMax(2.2), { max: 2.5, step: 0.625 });
    assert.deepEqual(niceMax(0), { max: 1, step: 0.25 });
    assert.equal(niceMax(9.7).max, 10);
    assert.equal(formatCount(50_000), "50k");
    assert.equal(formatCount(1500), "1.5k");
    assert.equal(formatCount(770), "770");
});

test("tick labels are exact (0.25 s, not 0.3 s) and a value below 0 stays on the frame's floor", () => {
    assert.equal(tickLabel(0.25), "0.25");
    assert.equal(tickLabel(0.625), "0.625");
    assert.equal(tickLabel(75), "75");
    const svg = renderChart({ title: "t", series: [{ name: "s", points: [{ concurrency: 100, failedPct: 0, p99ExcessS: -3.3 }, { concurrency: 1000, failedPct: 0, p99ExcessS: 0.9 }] }] });
    assert.match(svg, />0\.25s<\/text>/);
    const floor = Number(/<g class="panel-p99">[\s\S]*?<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"/.exec(svg)!.slice(1, 3).reduce((a, b) => String(Number(a) + Number(b))));
    const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"[^>]*><title>s: 100 in flight, -3\.3s/g)].map(m => Number(m[1]));
    assert.deepEqual(ys, [floor]);
});
