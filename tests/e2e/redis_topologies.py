"""A Redis Cluster and a Redis Sentinel group on loopback, and SMTP load
that records every verdict, for the end-to-end tests and benchmarks of the
store's high-availability modes (test_redis_ha.py, tests/bench).

Cluster(tmp): six redis-server --cluster-enabled yes (node timeout 2 s),
created with redis-cli --cluster create --cluster-replicas 1; the layout
(masters, who replicates whom, who serves a slot) is read from CLUSTER
NODES, never assumed from the ports.  SentinelGroup(tmp): a master, two
replicas and three sentinels watching it as "mymaster" (quorum 2, down
after 1 s).  Both wait until replicas are in sync, so that a failover can
start at once, and both are stopped by stop().

Load(port, addresses, sessions): SESSIONS threads, each sending SMTP
transactions through Postfix as fast as they are answered, from the
client addresses given (XCLIENT), each with a sender of its own, so every
greylist decision is a new triplet; every RCPT reply is kept with its
time (Verdicts).  failover_report() reads a failover from them, and
recovered() says when it is over.  greylist_key() and key_slot() name
where the filter keeps a client network's greylist state (docs/daemon.md,
"The store"), so that Cluster.addresses_on() finds client addresses whose
state a given master holds.
"""

import base64
import hashlib
import os
import re
import socket
import subprocess
import threading
import time

from harness import SMTPClient, free_port, run, wait_until

SLOTS = 16384


def key_slot(key):
    """Redis Cluster's slot of KEY: CRC16 (XMODEM) of the key or of its
    {hash tag}, modulo 16384."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % SLOTS


def greylist_key(network, prefix="pc:"):
    """The store key of a client network's greylist hash: "g:" and the
    first 10 bytes of SHA-256 of the network, base64url, unpadded."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(network.encode()).digest()[:10]).decode().rstrip("=")
    return prefix + "g:" + digest


def network_of(address):
    """The /24 the filter greylists an IPv4 client by."""
    return ".".join(address.split(".")[:3]) + ".0/24"


def _free_cluster_port():
    """A free port P with P + 10000 (the cluster bus) free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port P with P + 10000 free")


class RedisProcess:
    """One redis-server (or sentinel) on 127.0.0.1:port in its own
    directory, without persistence; kill() is kill -9, start() brings it
    back on the same port with the same arguments."""

    def __init__(self, tmp, name, args=(), config=None, port=None):
        self.dir = tmp.sub(name)
        self.port = port or free_port()
        self.args = list(args)
        self.config = config
        self.proc = None
        self.password = None      # what cli() authenticates with

    def start(self):
        argv = ["redis-server"]
        if self.config is not None:
            path = os.path.join(self.dir, "redis.conf")
            if not os.path.exists(path):
                with open(path, "w") as f:
                    f.write(self.config)
            argv.append(path)
        argv += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")] + self.args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or self.answers(), 20,
                   "redis-server on port %d to answer" % self.port)
        if self.proc.poll() is not None:
            raise RuntimeError("redis-server on port %d exited:\n%s" % (self.port, self.log()))
        return self

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return bool(s.recv(1))
        except OSError:
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(10)

    def cli(self, *args, check=True):
        argv = ["redis-cli", "-p", str(self.port), "--raw"]
        if self.password:
            argv += ["-a", self.password, "--no-auth-warning"]
        return run(argv + [str(a) for a in args], timeout=60, check=check).stdout.strip()

    def role(self):
        return self.cli("ROLE").splitlines()[0]

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""


class Cluster:
    def __init__(self, tmp, name="cluster"):
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000", "--repl-diskless-sync-delay", "0"]
        self.nodes = []
        for i in range(6):
            self.nodes.append(RedisProcess(tmp, "%s-%d" % (name, i), args, port=_free_cluster_port()).start())
        out = self.nodes[0].cli("--cluster", "create", *["127.0.0.1:%d" % n.port for n in self.nodes],
                                "--cluster-replicas", "1", "--cluster-yes")
        if "[OK] All 16384 slots covered" not in out:
            raise RuntimeError("redis-cli --cluster create failed:\n" + out)
        self.wait_ok()

    @property
    def seeds(self):
        return ", ".join("redis://127.0.0.1:%d" % n.port for n in self.nodes)

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def _asked(self):
        return next(n for n in self.nodes if n.running())

    def nodes_table(self):
        """CLUSTER NODES as (port, flags, master id, id, slot ranges)."""
        rows = []
        for line in self._asked().cli("CLUSTER", "NODES").splitlines():
            words = line.split()
            if len(words) < 8:
                continue
            port = int(words[1].split("@")[0].rsplit(":", 1)[1])
            rows.append((port, words[2], words[3], words[0], words[8:]))
        return rows

    def layout(self):
        """{"masters": [ports serving slots], "replica_of": {replica: master}}."""
        rows = self.nodes_table()
        port_of = {row[3]: row[0] for row in rows}
        masters = [r[0] for r in rows if "master" in r[1] and "fail" not in r[1].replace("fail?", "") and r[4]]
        replicas = {r[0]: port_of.get(r[2]) for r in rows if "slave" in r[1]}
        return {"masters": sorted(masters), "replica_of": replicas}

    def master_of(self, slot):
        for port, flags, _, _, ranges in self.nodes_table():
            if "master" not in flags:
                continue
            for item in ranges:
                if item.startswith("["):
                    continue
                first, _, last = item.partition("-")
                if int(first) <= slot <= int(last or first):
                    return port
        return None

    def id_of(self, port):
        return self.node(port).cli("CLUSTER", "MYID")

    def wait_ok(self, timeout=60):
        def ok():
            for node in self.nodes:
                if not node.running():
                    continue
                info = node.cli("CLUSTER", "INFO", check=False)
                if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                    return False
                replication = node.cli("INFO", "replication", check=False)
                if "role:slave" in replication and "master_link_status:up" not in replication:
                    return False
            return True
        wait_until(ok, timeout, "the cluster to serve every slot, replicas in sync", interval=0.2)

    def addresses_on(self, masters, per_master, second_octet, slots=None):
        """{master port: client addresses}: PER_MASTER addresses 198.SECOND.x.10
        (and on, into the next second octets) for each of MASTERS, whose
        network's greylist key hashes to a slot it serves (and in SLOTS,
        if given)."""
        chosen = {port: [] for port in masters}
        for second in range(second_octet, second_octet + 32):
            for third in range(256):
                address = "198.%d.%d.10" % (second, third)
                slot = key_slot(greylist_key(network_of(address)))
                if slots is not None and slot not in slots:
                    continue
                port = self.master_of(slot)
                if port in chosen and len(chosen[port]) < per_master:
                    chosen[port].append(address)
                if all(len(found) == per_master for found in chosen.values()):
                    return chosen
        raise RuntimeError("no %d networks on each master %s" % (per_master, masters))

    def keys_per_master(self, pattern="pc:*"):
        """{master port: how many keys matching PATTERN it holds}."""
        return {port: len(self.node(port).cli("--scan", "--pattern", pattern).split())
                for port in self.layout()["masters"]}

    def stop(self):
        for node in self.nodes:
            node.kill()


class SentinelGroup:
    NAME = "mymaster"

    def __init__(self, tmp, name="sentinel"):
        self.servers = [RedisProcess(tmp, "%s-data-0" % name, ["--repl-diskless-sync-delay", "0"]).start()]
        master_port = self.servers[0].port
        for i in (1, 2):
            self.servers.append(RedisProcess(tmp, "%s-data-%d" % (name, i),
                                             ["--repl-diskless-sync-delay", "0",
                                              "--replicaof", "127.0.0.1", str(master_port)]).start())
        config = ("sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %s 1000\n"
                  "sentinel failover-timeout %s 5000\n" % (self.NAME, master_port, self.NAME, self.NAME))
        self.sentinels = [RedisProcess(tmp, "%s-sentinel-%d" % (name, i), ["--sentinel"], config=config).start()
                          for i in range(3)]
        self.wait_settled()

    @property
    def urls(self):
        return ", ".join("redis://127.0.0.1:%d" % s.port for s in self.sentinels)

    def server(self, port):
        return next(s for s in self.servers if s.port == port)

    def named_master(self):
        """The port a live sentinel names now, or None."""
        for sentinel in self.sentinels:
            if not sentinel.running():
                continue
            answer = sentinel.cli("SENTINEL", "get-master-addr-by-name", self.NAME, check=False).split()
            if len(answer) == 2:
                return int(answer[1])
        return None

    def master(self, timeout=30):
        """The master the sentinels name, once it says ROLE master."""
        def found():
            port = self.named_master()
            return port if port and self.server(port).running() and self.server(port).role() == "master" else None
        return wait_until(found, timeout, "a master the sentinels name that says ROLE master", interval=0.1)

    def wait_settled(self, timeout=60):
        def settled():
            port = self.master()
            if "connected_slaves:2" not in self.server(port).cli("INFO", "replication"):
                return False
            for server in self.servers:
                if server.port != port and "master_link_status:up" not in server.cli("INFO", "replication"):
                    return False
            for sentinel in self.sentinels:
                lines = sentinel.cli("SENTINEL", "master", self.NAME).splitlines()
                fields = dict(zip(lines[0::2], lines[1::2]))
                if (fields.get("num-slaves") != "2" or fields.get("num-other-sentinels") != "2"
                        or fields.get("flags") != "master" or fields.get("port") != str(port)):
                    return False
            return True
        wait_until(settled, timeout, "the sentinel group to settle", interval=0.2)

    def stop(self):
        for process in self.sentinels + self.servers:
            process.kill()


# ---------------------------------------------------------------- load

GREYLISTED = re.compile(r"^4\.7\.1 Greylisted")
STORE_ERROR = re.compile(r"^4\.3\.0 ")


class Verdict:
    __slots__ = ("at", "address", "code", "text")

    def __init__(self, at, address, code, text):
        self.at, self.address, self.code, self.text = at, address, code, text

    @property
    def kind(self):
        """"greylisted" or "passed" (what the policy says: a good
        verdict), "store-error" (on_error tempfail), or "other"."""
        if self.code == 451 and GREYLISTED.match(self.text):
            return "greylisted"
        if self.code == 250:
            return "passed"
        if self.code == 451 and STORE_ERROR.match(self.text):
            return "store-error"
        return "other"

    def __repr__(self):
        return "%.3f %s %d %s" % (self.at, self.address, self.code, self.text)


def _letters(number):
    text = ""
    while True:
        text = chr(ord("a") + number % 26) + text
        number //= 26
        if number == 0:
            return text


class Load:
    """SESSIONS threads sending transactions through Postfix on PORT from
    ADDRESSES (round robin), until stop(); verdicts() gives every RCPT
    reply in time order.  Each transaction is its own connection: EHLO,
    XCLIENT ADDR, MAIL FROM a sender never used before, RCPT TO, QUIT."""

    def __init__(self, port, addresses, sessions=20, tag="load", pause=0.0):
        self.port = port
        self.addresses = list(addresses)
        self.sessions = sessions
        self.tag = tag
        self.pause = pause
        self.run = int(time.time() * 1000) % (26 ** 6)   # senders of another run differ
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._verdicts = []
        self._errors = []
        self._threads = []

    def start(self):
        for number in range(self.sessions):
            thread = threading.Thread(target=self._session, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _session(self, number):
        sent = 0
        while not self._stop.is_set():
            address = self.addresses[(number + sent * self.sessions) % len(self.addresses)]
            # Letters only: the filter folds the digits of a sender (VERP).
            sender = "%s-%s-%s@sender.example" % (_letters(self.run), _letters(number), _letters(sent))
            sent += 1
            try:
                client = SMTPClient(self.port, timeout=60)
                try:
                    client.hello(xclient={"addr": address})
                    client.command("MAIL FROM:<%s>" % sender)
                    reply = client.command("RCPT TO:<user@example.com>")
                    verdict = Verdict(time.monotonic(), address, reply.code, reply.text)
                    if reply.code == 250:   # what the policy let through goes on to the sink
                        client.data("Subject: load\n\nload\n")
                finally:
                    client.close()
            except (OSError, ConnectionError) as error:
                with self._lock:
                    self._errors.append(str(error))
                time.sleep(0.05)
                continue
            with self._lock:
                self._verdicts.append(verdict)
            if self.pause:
                time.sleep(self.pause)

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(90)
        return self

    def verdicts(self, since=0.0, addresses=None):
        with self._lock:
            chosen = [v for v in self._verdicts if v.at >= since]
        if addresses is not None:
            chosen = [v for v in chosen if v.address in addresses]
        return sorted(chosen, key=lambda v: v.at)

    def wait_for(self, count, since=0.0, timeout=30):
        """Until COUNT verdicts came after SINCE."""
        wait_until(lambda: len(self.verdicts(since)) >= count, timeout, "%d verdicts" % count, interval=0.05)

    @property
    def connection_errors(self):
        with self._lock:
            return list(self._errors)


def recovered(addresses, seconds=1.5):
    """Whether LOAD (after EVENT_AT) has seen store errors from ADDRESSES
    and then SECONDS of nothing but good verdicts from them."""
    def done(load, event_at):
        report = failover_report(load.verdicts(addresses=addresses), event_at)
        if "last_error_s" not in report:
            return False
        quiet_since = event_at + report["last_error_s"]
        good = [v for v in load.verdicts(since=quiet_since, addresses=addresses) if v.kind == "greylisted"]
        return bool(good) and time.monotonic() - quiet_since >= seconds
    return done


def failover_report(verdicts, killed_at):
    """What the verdicts after KILLED_AT say about a failover: the first
    store error, the last one, the first good verdict after the last
    store error (the time to recover, from the kill), and the counts."""
    after = [v for v in verdicts if v.at >= killed_at]
    errors = [v for v in after if v.kind == "store-error"]
    report = {"verdicts": len(after), "store_errors": len(errors),
              "other": [v for v in after if v.kind == "other"]}
    if errors:
        last_error = errors[-1].at
        good = [v for v in after if v.at > last_error and v.kind in ("greylisted", "passed")]
        report["first_error_s"] = errors[0].at - killed_at
        report["last_error_s"] = last_error - killed_at
        report["recovered_s"] = good[0].at - killed_at if good else None
    return report
