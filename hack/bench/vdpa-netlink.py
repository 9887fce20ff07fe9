#!/usr/bin/env python3
"""The floor for vDPA create/delete: generic netlink family "vdpa" spoken from one process, no
tool started per operation. The provisioning suite in the kernel testbed runs this next to the
project's path (iproute2's vdpa tool through host/vdpa.ts) to report the ratio.

  vdpa-netlink.py MGMTDEV COUNT PREFIX   creates PREFIX0.. on MGMTDEV and deletes each, COUNT times;
                                         prints {"pairs": COUNT, "ms_per_pair": …} as JSON
"""
import json
import os
import socket
import struct
import sys
import time

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
VDPA_CMD_DEV_NEW = 3
VDPA_CMD_DEV_DEL = 4
VDPA_ATTR_MGMTDEV_BUS_NAME = 1
VDPA_ATTR_MGMTDEV_DEV_NAME = 2
VDPA_ATTR_DEV_NAME = 4


def attr(kind, value):
    payload = value.encode() + b"\0" if isinstance(value, str) else value
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


class Genl:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.seq = 0

    def request(self, family, cmd, attrs):
        self.seq += 1
        body = struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
        self.sock.send(struct.pack("=IHHII", 16 + len(body), family, NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body)
        replies = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
                if kind == NLMSG_ERROR:
                    (error,) = struct.unpack_from("=i", data, offset + 16)
                    if error:
                        raise OSError(-error, os.strerror(-error))
                    return replies
                replies.append(data[offset + 16 : offset + length])
                offset += (length + 3) & ~3

    def family(self, name):
        for reply in self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, [attr(CTRL_ATTR_FAMILY_NAME, name)]):
            offset = 4
            while offset < len(reply):
                length, kind = struct.unpack_from("=HH", reply, offset)
                if kind == CTRL_ATTR_FAMILY_ID:
                    return struct.unpack_from("=H", reply, offset + 4)[0]
                offset += (length + 3) & ~3
        raise LookupError(name)


def main():
    mgmtdev, count, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    genl = Genl()
    vdpa = genl.family("vdpa")
    bus, _, dev = mgmtdev.rpartition("/")
    mgmt = ([attr(VDPA_ATTR_MGMTDEV_BUS_NAME, bus)] if bus else []) + [attr(VDPA_ATTR_MGMTDEV_DEV_NAME, dev)]
    start = time.perf_counter()
    for i in range(count):
        name = f"{prefix}{i}"
        genl.request(vdpa, VDPA_CMD_DEV_NEW, mgmt + [attr(VDPA_ATTR_DEV_NAME, name)])
        if not os.path.exists(f"/sys/bus/vdpa/devices/{name}"):
            raise RuntimeError(f"{name} did not appear")
        genl.request(vdpa, VDPA_CMD_DEV_DEL, [attr(VDPA_ATTR_DEV_NAME, name)])
    elapsed = time.perf_counter() - start
    print(json.dumps({"pairs": count, "ms_per_pair": round(elapsed * 1000 / count, 2)}))


if __name__ == "__main__":
    main()
