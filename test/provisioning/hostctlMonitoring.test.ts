/**
 * hostctl's monitoring module (provisioning/host/hostctl/monitoring.py): which services a bundle's
 * files belong to (a module two exporters share restarts the one this host runs), and retiring a
 * service an earlier pycluster ran (mtail, replaced by pycluster-access-log-exporter on the same
 * port): stopped and disabled, its files removed, before the replacement starts. systemctl is a
 * recorder; the real units are exercised by the cluster e2e.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { py } from "../support/hostTools";

function run(body: string): Record<string, unknown> {
    return JSON.parse(
        py(`import json, os, shutil, tempfile
from hostctl import monitoring
d = tempfile.mkdtemp()
calls = []
monitoring.systemctl = lambda *a, check=True: calls.append(" ".join(a))
out = {}
${body}
shutil.rmtree(d)
print(json.dumps(out))`)
            .trim()
            .split("\n")
            .pop()!,
    );
}

test("a module the exporters share belongs to the exporter of the bundle it comes in", () => {
    const out = run(`
lb = ["access_log_exporter.py", "pycluster-access-log-exporter.service", "prometheus_text.py", "prometheus-nginx-exporter.conf"]
app = ["statsd_exporter.py", "pycluster-statsd-exporter.service", "prometheus_text.py"]
out["lb"] = monitoring.services_of("prometheus_text.py", lb)
out["app"] = monitoring.services_of("prometheus_text.py", app)
out["lbServices"] = monitoring.bundle_services(lb)
out["own"] = monitoring.services_of("access_log_exporter.py", lb)`);
    assert.deepEqual(out.lb, ["pycluster-access-log-exporter"]);
    assert.deepEqual(out.app, ["pycluster-statsd-exporter"]);
    assert.deepEqual(out.lbServices, ["prometheus-nginx-exporter", "pycluster-access-log-exporter"]);
    assert.deepEqual(out.own, ["pycluster-access-log-exporter"]);
});

test("mtail, where an earlier pycluster set it up, is stopped, disabled and its files removed; elsewhere nothing happens", () => {
    const out = run(`
dropin, program = d + "/mtail.service.d/60-pycluster.conf", d + "/mtail/pycluster-nginx-access.mtail"
monitoring.RETIRED = [{"service": "mtail", "replacedBy": "pycluster-access-log-exporter", "paths": [dropin, program]}]
out["nothing"] = monitoring.retire_replaced(monitoring.retired_here())
out["callsBefore"] = list(calls)
os.makedirs(os.path.dirname(dropin)); os.makedirs(os.path.dirname(program))
open(dropin, "w").write("x"); open(program, "w").write("x")
out["retired"] = monitoring.retire_replaced(monitoring.retired_here())
out["calls"] = calls
out["left"] = [p for p in (dropin, program, os.path.dirname(dropin)) if os.path.exists(p)]
out["programDirKept"] = os.path.isdir(os.path.dirname(program))
out["again"] = monitoring.retire_replaced(monitoring.retired_here())`);
    assert.deepEqual(out.nothing, []);
    assert.deepEqual(out.callsBefore, [], "a host without our mtail files: no systemctl at all");
    assert.deepEqual(out.retired, ["mtail stopped and disabled (replaced by pycluster-access-log-exporter)"]);
    assert.deepEqual(out.calls, ["disable --now --quiet mtail", "daemon-reload"]);
    assert.deepEqual(out.left, [], "the drop-in, its emptied .d directory and the program are gone");
    assert.equal(out.programDirKept, true, "the package's /etc/mtail stays");
    assert.deepEqual(out.again, [], "idempotent");
});

test("the contract retires exactly the files an earlier pycluster installed for mtail", () => {
    const out = run(`out["retired"] = monitoring.RETIRED`);
    assert.deepEqual(out.retired, [
        { service: "mtail", replacedBy: "pycluster-access-log-exporter", paths: ["/etc/systemd/system/mtail.service.d/60-pycluster.conf", "/etc/mtail/pycluster-nginx-access.mtail"] },
    ]);
});
