"""Prometheus' text exposition format and a /metrics endpoint: what pycluster's own exporters share.

Installed beside them (Python finds a script's own directory first on its import path), so each
exporter stays a plain script run by its systemd unit.
"""
import bisect
import http.server

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def label_text(labels):
    if not labels:
        return ""
    escaped = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), chr(92) + "n")}"' for k, v in labels)
    return "{" + ",".join(escaped) + "}"


def number(value):
    return repr(float(value)) if value != int(value) else str(int(value))


class Histogram:
    """Observations in buckets (each counted in the first bound it does not exceed, or past the last)."""

    def __init__(self, buckets=BUCKETS):
        self.buckets = list(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0

    def observe(self, value):
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def lines(self, name, labels=()):
        """Its series in the text format: cumulative buckets, +Inf, sum and count."""
        lines, cumulative = [], 0
        for bound, n in zip(self.buckets, self.counts):
            cumulative += n
            lines.append(f"{name}_bucket{label_text(labels + (('le', number(bound)),))} {cumulative}")
        count = sum(self.counts)
        lines.append(f"{name}_bucket{label_text(labels + (('le', '+Inf'),))} {count}")
        lines.append(f"{name}_sum{label_text(labels)} {number(self.total)}")
        lines.append(f"{name}_count{label_text(labels)} {count}")
        return lines


def exposition(series, help_texts):
    """series: name -> lines; help_texts: name -> (type, help). A histogram's lines keep their order, others sort."""
    out = []
    for name in sorted(series):
        kind, text = help_texts[name]
        lines = series[name] if kind == "histogram" else sorted(series[name])
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"] + lines
    return "\n".join(out) + "\n"


def serve_metrics(listen, render):
    """Answers GET /metrics with render() until the process ends (threaded: a slow scrape blocks no other)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "see /metrics")
                return
            body = render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(listen, Handler)
    server.serve_forever()


def host_port(text):
    host, _, port = text.rpartition(":")
    return host, int(port)
