#!/usr/bin/python3
"""The local internet's DNS (local/internet.ts): authoritative for the local cloud's zones, and the
resolver its hosts are handed (the subnet's dnsNameservers).

Records live in a JSON file that the local engine (the ovh.domain.ZoneRecord resource) and tests
(a user editing DNS elsewhere) write; it is read again whenever it changes, so a record is visible
at once. Real resolvers cache answers up to the record's TTL and "no such name" up to the zone's
SOA minimum (RFC 2308): that is why the program's letsencrypt step waits for a managed record.

Answers as an authoritative server does (RFC 1034 4.3.2, RFC 2308): a name in a zone with a record
of the asked type gets it; a name with other records only gets NOERROR and no answer (NODATA);
an unknown name in a zone gets NXDOMAIN, both with the zone's SOA; a name in no zone is REFUSED.

usage: internetDns.py ADDRESS RECORDS_JSON
"""
import json
import os
import sys
import threading
import time

from dnslib import QTYPE, RCODE, RR, SOA, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

# Negative answers' TTL (the SOA minimum), as short as OVH's zones allow.
SOA_MINIMUM = 60


class ZoneFileResolver(BaseResolver):
    def __init__(self, records_path):
        self.path = records_path
        self.lock = threading.Lock()
        self.mtime = None
        self.zones = []
        self.records = []

    def load(self):
        with self.lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
            except FileNotFoundError:
                self.zones, self.records, self.mtime = [], [], None
                return
            if mtime != self.mtime:
                with open(self.path) as f:
                    data = json.load(f)
                self.zones = [z.lower().rstrip(".") for z in data.get("zones", [])]
                self.records = data.get("records", [])
                self.mtime = mtime

    def zone_of(self, name):
        inside = [z for z in self.zones if name == z or name.endswith("." + z)]
        return max(inside, key=len) if inside else None

    def soa(self, zone):
        return RR(zone, QTYPE.SOA, ttl=SOA_MINIMUM,
                  rdata=SOA(f"ns1.{zone}", f"hostmaster.{zone}", (int(self.mtime or 0) // 10**9, 3600, 600, 86400, SOA_MINIMUM)))

    def resolve(self, request, handler):
        self.load()
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        zone = self.zone_of(name)
        if zone is None:
            reply.header.rcode = RCODE.REFUSED
            reply.header.aa = 0
            return reply
        if qtype == "SOA" and name == zone:
            reply.add_answer(self.soa(zone))
            return reply
        at_name = [r for r in self.records if r["name"].lower().rstrip(".") == name]
        for r in at_name:
            if r["type"] == "A" and qtype in ("A", "ANY"):
                reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=int(r.get("ttl", 60)), rdata=A(r["value"])))
        if not reply.rr:
            if not at_name and name != zone:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa(zone))
        return reply


def main():
    address, records_path = sys.argv[1], sys.argv[2]
    resolver = ZoneFileResolver(records_path)
    logger = DNSLogger("request,reply,truncated,error", prefix=False)
    servers = [DNSServer(resolver, address=address, port=53, logger=logger, tcp=tcp) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    print(f"internet DNS: serving on {address}:53 from {records_path}", flush=True)
    while all(s.isAlive() for s in servers):
        time.sleep(1)
    sys.exit(1)


if __name__ == "__main__":
    main()
