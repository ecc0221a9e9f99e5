#!/usr/bin/python3
"""Who answers ARP for an address on a network (local/cloudPair.ts whoAnswers), as `arping -D`
would show: sends an ARP request for TARGET out of DEV (from DEV's own MAC and SOURCE address)
and prints the sender MAC of every reply that arrives within WAIT_MS, one per line. Two lines
mean two hosts claim the address (split brain). Runs in the router's namespace; needs CAP_NET_RAW.

usage: arpProbe.py DEV SOURCE TARGET WAIT_MS
"""
import select
import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806


def mac_of(dev):
    with open(f"/sys/class/net/{dev}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def main():
    dev, source, target, wait_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    mac = mac_of(dev)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    s.bind((dev, ETH_P_ARP))
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, socket.inet_aton(source), b"\0" * 6, socket.inet_aton(target))
    s.send(b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + arp)
    seen = []
    deadline = time.monotonic() + wait_ms / 1000
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([s], [], [], left)[0]:
            break
        frame = s.recv(128)
        op, sha, spa = struct.unpack_from("!6xH6s4s", frame, 14)
        if op == 2 and socket.inet_ntoa(spa) == target and sha not in seen:
            seen.append(sha)
    for sha in seen:
        print(":".join(f"{b:02x}" for b in sha))


main()
