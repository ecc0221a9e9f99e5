import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { AppUnitOptions, renderAppUnit, renderLimitDropIn, renderSysctlUnit } from "../../../provisioning/render/systemd";
import { hostctl, makeRelease, missingTools, sh, tempDir } from "../../support/hostTools";

const OPTS: AppUnitOptions = {
    appName: "webapp",
    user: "webapp",
    appRoot: "/srv/webapp/current",
    python: "/srv/webapp/current/.venv/bin/python",
    configPath: "/etc/webapp/gunicorn.conf.py",
    envFilePath: "/etc/webapp/env",
    appModule: "app:application",
    gracefulTimeout: 30,
    openFiles: 7024,
    after: ["pycluster-sysctl.service"],
};

test("the app unit: notify, HUP reload, graceful stop, restart, limits, unprivileged", () => {
    const unit = renderAppUnit(OPTS);
    for (const line of [
        "Type=notify",
        "User=webapp",
        "Group=webapp",
        "WorkingDirectory=/srv/webapp/current",
        "EnvironmentFile=/etc/webapp/env",
        "ExecStart=/srv/webapp/current/.venv/bin/python -m gunicorn --config /etc/webapp/gunicorn.conf.py app:application",
        "ExecReload=/bin/kill -s HUP $MAINPID",
        "KillMode=mixed",
        "Restart=always",
        "RestartSec=5s",
        "LimitNOFILE=7024",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=webapp",
        "CapabilityBoundingSet=",
    ]) {
        assert.ok(unit.split("\n").includes(line), line);
    }
    const stop = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)![1]);
    assert.ok(stop >= OPTS.gracefulTimeout, "TimeoutStopSec >= graceful_timeout");
    assert.match(unit, /^After=network-online\.target pycluster-sysctl\.service$/m);
    assert.throws(() => renderAppUnit({ ...OPTS, user: "root" }), /must not run as root/);
    assert.throws(() => renderAppUnit({ ...OPTS, appModule: "a:b\nExecStartPre=/bin/sh" }), /cannot contain a newline/);
});

test("drop-ins: open files for nginx, sysctl before the services", () => {
    assert.match(renderLimitDropIn(60128), /^\[Service\]\nLimitNOFILE=60128$/m);
    const sysctl = renderSysctlUnit({ sysctlFile: "/etc/sysctl.d/60-pycluster.conf", before: ["nginx.service"] });
    assert.match(sysctl, /^Before=nginx\.service$/m);
    assert.match(sysctl, /^ExecStart=\/lib\/systemd\/systemd-sysctl \/etc\/sysctl\.d\/60-pycluster\.conf$/m);
    assert.match(sysctl, /^Type=oneshot$/m);
});

// --- systemd-analyze -------------------------------------------------------

const state = { release: "", dir: "" };
after(() => {
    for (const d of [state.release, state.dir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

/** The unit as on a node, but pointing at a venv that exists here (verify checks ExecStart). */
function writeUnits(app = renderAppUnit({ ...OPTS, python: path.join(state.release || (state.release = makeRelease()), ".venv", "bin", "python") })) {
    state.dir ||= tempDir("pyc-units-");
    fs.writeFileSync(path.join(state.dir, "webapp.service"), app);
    fs.writeFileSync(path.join(state.dir, "pycluster-sysctl.service"), renderSysctlUnit({ sysctlFile: "/etc/sysctl.d/60-pycluster.conf", before: ["webapp.service"] }));
    return state.dir;
}

test("rendered units pass systemd-analyze verify (hostctl's check)", { skip: missingTools(["systemd-analyze"]) }, () => {
    const dir = writeUnits();
    for (const unit of ["webapp.service", "pycluster-sysctl.service"]) {
        const r = hostctl(["unit-validate", "--unit", path.join(dir, unit)]);
        assert.equal(r.code, 0, `${unit}: ${r.output}`);
    }
});

test("a broken unit is rejected by the same check", { skip: missingTools(["systemd-analyze"]) }, () => {
    const dir = writeUnits(renderAppUnit(OPTS).replace("Type=notify", "Type=sometimes"));
    const r = hostctl(["unit-validate", "--unit", path.join(dir, "webapp.service")]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /systemd-analyze rejected the unit; nothing was switched/);
    const missing = writeUnits(renderAppUnit({ ...OPTS, python: "/nonexistent/python" }));
    const r2 = hostctl(["unit-validate", "--unit", path.join(missing, "webapp.service")]);
    assert.equal(r2.code, 1, r2.output);
    assert.match(r2.output, /nonexistent\/python/);
});

test("the app unit's systemd-analyze security exposure is at most 5", { skip: missingTools(["systemd-analyze"]) }, () => {
    const dir = writeUnits();
    const r = sh("systemd-analyze", ["security", "--offline=true", path.join(dir, "webapp.service")]);
    const m = /Overall exposure level for webapp\.service: (\d+(?:\.\d+)?)/.exec(r.output);
    assert.ok(m, r.output);
    console.log(`systemd-analyze security: exposure ${m[1]} for the app unit`);
    assert.ok(Number(m[1]) <= 5, `exposure ${m[1]}`);
});
