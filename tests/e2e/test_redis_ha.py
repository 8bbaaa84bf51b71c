"""Greylisting and rate limits on Redis Cluster and Redis Sentinel, through
a real Postfix, and what the filter does while they fail over.

Each class starts its deployment once (redis_topologies.py: six cluster
nodes, or a master, two replicas and three sentinels), reads its layout
from CLUSTER NODES or the sentinels, and never assumes which port is
what.  The policy greylists every client with a 1 s delay and never
whitelists a network (awl 0), so under load every transaction, with a
sender of its own, is a new triplet: the good verdict is "451 4.7.1
Greylisted", store.on_error = tempfail gives "451 4.3.0", and nothing may
ever reach the sink.  Clients in 198.19.0.0/16 are also rate limited to
3 a minute.

Under load (20 sessions) a failover is timed from the kill to the first
good verdict after the last store error, and printed.
"""

import re
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

from harness import (BASE_POLICY, Postfix, PostfixTestCase, free_port, policy, portcullis, rule_line, swaks,
                     wait_until)
from redis_topologies import (Cluster, Load, SentinelGroup, failover_report, greylist_key, key_slot, network_of,
                              recovered)

DELAY = 1
POLICY = policy(BASE_POLICY, """\
list limited ip { 198.19.0.0/16 }
on connect { accept if client.ip in trusted }
on rcpt {
    ratelimit client.ip 3/1m if client.ip in limited
    greylist delay %ds window 1h expire 1d awl 0 if not authenticated
}
""" % DELAY)
GREYLIST_LINE = rule_line(POLICY, "greylist delay")
OVER = (450, "4.7.1 Rate limit exceeded, try again later")
SESSIONS = 20


def script_calls(server, command):
    """How many times COMMAND (evalsha, eval) ran on SERVER since it started."""
    found = re.search(r"cmdstat_%s:calls=(\d+)" % command, server.cli("INFO", "commandstats"))
    return int(found.group(1)) if found else 0


def evalsha_calls(server):
    return script_calls(server, "evalsha")


def eval_calls(server):
    return script_calls(server, "eval")


def log(text):
    sys.stderr.write("redis-ha: %s\n" % text)
    sys.stderr.flush()


class HaCase(PostfixTestCase):
    """What the Cluster and Sentinel classes share: their DEPLOYMENT for
    the class, a filter on it, sends, metrics and the load."""

    DEPLOYMENT = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.deployment = cls.DEPLOYMENT(cls.tmp)
        except BaseException:
            cls._stop_services()
            cls.tmp.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.deployment.stop()
        super().tearDownClass()

    def store_settings(self):
        raise NotImplementedError

    def extra_diagnostics(self):
        notes = super().extra_diagnostics()
        for flt in getattr(self, "filters", []):
            lines = [line for line in flt.log().splitlines() if "store:" in line]
            notes.append("--- the store's lines (%s):\n%s" % (flt.dir, "\n".join(lines[-40:])))
        return notes

    def start(self, name=None, address=None):
        self.metrics_port = free_port()
        kwargs = {"settings": {"store": self.store_settings(),
                               "metrics": {"listen": "127.0.0.1:%d" % self.metrics_port}}}
        if name:
            kwargs["name"] = name
        if address:
            kwargs["address"] = address
        return self.start_filter(POLICY, **kwargs)

    def sender(self, tag=""):
        return "%s%s@sender.example" % (self._testMethodName.replace("_", "-"), tag)

    def attempt(self, addr, port=None):
        """One message from ADDR (XCLIENT) through Postfix on PORT (this
        class's by default), with the test's sender."""
        transcript = swaks(port or self.postfix.port, "user@example.com", sender=self.sender(),
                           xclient={"addr": addr}, workdir=self.tmp.path)
        self.transcripts.append(transcript)
        return transcript

    def in_parallel(self, function, items, threads=8):
        results = [None] * len(items)

        def work(start):
            for index in range(start, len(items), threads):
                results[index] = function(items[index])
        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return results

    def assertGreylisted(self, transcript):
        reply = transcript.reply_to("RCPT")
        self.assertEqual(reply.code, 451, transcript)
        self.assertRegex(reply.text, r"^4\.7\.1 Greylisted", transcript)

    def assertPassed(self, transcript):
        self.assertEqual(transcript.reply_to("RCPT").code, 250, transcript)

    def admin(self, flt, *args):
        proc = portcullis(*args, "-c", flt.config_file)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        return proc.stdout

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10) as response:
            return response.read().decode()

    @staticmethod
    def metric(text, name, **labels):
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#") or not (line.startswith(name + "{") or line.split(" ")[0] == name):
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def store_errors_by_kind(self):
        text = self.metrics()
        kinds = re.findall(r'portcullis_store_errors_total\{kind="([^"]+)"\} (\S+)', text)
        return {kind: int(float(value)) for kind, value in kinds}

    def under_load(self, flt, addresses, event, done, limit=40):
        """Load from ADDRESSES; EVENT() once good verdicts flow; the load
        runs until DONE(load, event_at) holds (or LIMIT seconds).  Returns
        the load and when the event happened."""
        delivered_before = len(self.sink.messages())
        load = Load(self.postfix.port, addresses, sessions=SESSIONS, tag=self._testMethodName).start()
        try:
            load.wait_for(SESSIONS * 2)
            warm = load.verdicts()
            self.assertEqual([v for v in warm if v.kind != "greylisted"], [], "before the event")
            event_at = time.monotonic()
            event()
            wait_until(lambda: done(load, event_at), limit, "the load to see the deployment serve again",
                       interval=0.2)
        finally:
            load.stop()
        self.assertFilterAlive(flt)
        verdicts = load.verdicts()
        # Only the policy's verdict or on_error's: nothing passed.
        self.assertEqual([v for v in verdicts if v.kind not in ("greylisted", "store-error")], [])
        time.sleep(0.5)
        self.assertEqual(len(self.sink.messages()), delivered_before, "a refused message reached the sink")
        self.assertEqual(load.connection_errors, [])
        return load, event_at

    def report_failover(self, what, load, event_at, addresses):
        report = failover_report(load.verdicts(addresses=addresses), event_at)
        log("%s: %d verdicts after it, %d store errors (%.2f s to %.2f s after it), first good verdict "
            "after the last error at %.2f s; store errors by kind: %s"
            % (what, report["verdicts"], report["store_errors"], report.get("first_error_s", 0),
               report.get("last_error_s", 0), report.get("recovered_s") or -1, self.store_errors_by_kind()))
        return report


class ClusterTest(HaCase):
    DEPLOYMENT = Cluster

    @property
    def cluster(self):
        return self.deployment

    def store_settings(self):
        return {"backend": "redis", "mode": "cluster", "url": self.cluster.seeds, "timeout": "300ms"}

    def test_greylist_and_ratelimit_keep_state_on_every_master(self):
        flt = self.start()
        masters = self.cluster.layout()["masters"]
        self.assertEqual(len(masters), 3)
        by_master = self.cluster.addresses_on(masters, 4, second_octet=18)
        addresses = [a for found in by_master.values() for a in found]
        for transcript in self.in_parallel(self.attempt, addresses):
            self.assertGreylisted(transcript)
        # Each network's key is where its slot says: on every master.
        for port, found in by_master.items():
            for address in found:
                key = greylist_key(network_of(address))
                self.assertEqual(self.cluster.node(port).cli("EXISTS", key), "1", (address, port))
        time.sleep(DELAY + 0.2)
        for transcript in self.in_parallel(self.attempt, addresses):
            self.assertPassed(transcript)
        flt.wait_for_log(r"rcpt: greylist pass .*reason=pass")

        # Rate limits: three clients, the fourth message of each refused.
        limited = ["198.19.%d.5" % i for i in (1, 2, 3)]
        for address in limited:
            codes = [self.attempt(address).reply_to("RCPT").code for _ in range(4)]
            self.assertEqual(codes, [451, 451, 451, OVER[0]], address)
        greylist_keys = self.cluster.keys_per_master("pc:g:*")
        bucket_keys = self.cluster.keys_per_master("pc:r:*")
        log("cluster: greylist keys per master %s, rate-limit buckets per master %s" % (greylist_keys, bucket_keys))
        for port in masters:
            self.assertGreater(greylist_keys[port], 0, port)
        self.assertEqual(sum(bucket_keys.values()), 3)

        # The admin commands see every master.
        stats = self.admin(flt, "greylist", "stats")
        self.assertIn("passed %d" % len(addresses), stats)
        listed = self.admin(flt, "greylist", "list")
        self.assertIn("%d triplets" % (len(addresses) + len(limited)), listed)
        self.assertIn("3 events, full", self.admin(flt, "ratelimit", "show", limited[0]))
        self.assertIn("reset", self.admin(flt, "ratelimit", "reset", limited[0]))
        # No longer the rate limit's refusal: greylisting's 451, or its pass
        # once DELAY has gone by since the first attempt (a slow box, ASan).
        self.assertIn(self.attempt(limited[0]).reply_to("RCPT").code, (451, 250))
        dropped = self.admin(flt, "greylist", "drop", "--client", addresses[0])
        self.assertIn("dropped network %s" % network_of(addresses[0]), dropped)
        self.assertGreylisted(self.attempt(addresses[0]))

    def test_two_filters_share_greylist_state(self):
        first = self.start(name="filter-a")
        second_port = free_port()
        second_postfix = Postfix(self.tmp, self.sink.port, milter="inet:127.0.0.1:%d" % second_port,
                                 name="postfix-b").start()
        try:
            second = self.start(name="filter-b", address=("inet", second_port))
            self.assertGreylisted(self.attempt("198.51.100.77"))
            time.sleep(DELAY + 0.2)
            retry = self.attempt("198.51.100.77", port=second_postfix.port)
            self.assertPassed(retry)
            second.wait_for_log(r"rcpt: greylist pass .*reason=pass")
            self.assertFilterAlive(first)
        finally:
            second_postfix.stop()

    def test_killed_master_under_load(self):
        flt = self.start()
        layout = self.cluster.layout()
        victim = layout["masters"][0]
        others = [port for port in layout["masters"] if port != victim]
        by_master = self.cluster.addresses_on(layout["masters"], 7, second_octet=60)
        on_victim = by_master[victim]
        addresses = on_victim + [a for port in others for a in by_master[port]]

        def kill():
            log("cluster: kill -9 of master %d (its replica: %s)" % (
                victim, [r for r, m in layout["replica_of"].items() if m == victim]))
            self.cluster.node(victim).kill()
            self.addCleanup(self.restart_if_dead, victim)
        load, killed_at = self.under_load(flt, addresses, kill, recovered(on_victim))
        report = self.report_failover("cluster kill -9 of a master", load, killed_at, on_victim)
        self.assertGreater(report["store_errors"], 0)
        self.assertIsNotNone(report["recovered_s"])
        before = [v for v in load.verdicts() if v.at < killed_at and v.kind == "store-error"]
        self.assertEqual(before, [])
        self.assertNotIn(victim, self.cluster.layout()["masters"])
        text = self.metrics()
        self.assertGreaterEqual(self.metric(text, "portcullis_store_failovers_total"), 1)
        self.assertGreaterEqual(self.metric(text, "portcullis_store_topology_version"), 2)
        flt.wait_for_log(r"store: redis cluster slot map version \d+: .*failover: ")


    def restart_if_dead(self, port):
        """The killed node back (as a replica), the cluster whole again."""
        if not self.cluster.node(port).running():
            self.cluster.node(port).start()
        self.cluster.wait_ok()

    def test_slot_migration_under_load(self):
        flt = self.start()
        layout = self.cluster.layout()
        source, destination = layout["masters"][0], layout["masters"][1]
        source_slots = sorted(s for s in range(16384) if self.cluster.master_of(s) == source)
        moving = set(source_slots[:1000])   # what redis-cli reshard takes: the first ones
        addresses = self.cluster.addresses_on([source], SESSIONS, second_octet=100, slots=moving)[source]
        errors_before = self.store_errors_by_kind()

        def reshard():
            proc = subprocess.run(["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % source,
                                   "--cluster-from", self.cluster.id_of(source),
                                   "--cluster-to", self.cluster.id_of(destination),
                                   "--cluster-slots", "1000", "--cluster-yes"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stdout[-3000:])
            self.resharded_at = time.monotonic()

        def done(load, event_at):
            return time.monotonic() - self.resharded_at > 1.0

        load, started = self.under_load(flt, addresses, reshard, done)
        verdicts = load.verdicts(since=started)
        errors = [v for v in verdicts if v.kind == "store-error"]
        text = self.metrics()
        log("cluster: reshard of 1000 slots %d -> %d took %.2f s under load: %d verdicts, %d store errors, "
            "redirects followed: moved %d, ask %d"
            % (source, destination, self.resharded_at - started, len(verdicts), len(errors),
               self.metric(text, "portcullis_store_redirects_total", kind="moved"),
               self.metric(text, "portcullis_store_redirects_total", kind="ask")))
        self.assertEqual(errors, [])
        self.assertEqual(self.store_errors_by_kind(), errors_before)
        self.assertGreater(self.metric(text, "portcullis_store_redirects_total"), 0)
        # The keys of the moved slots are on the destination now.
        for address in addresses:
            slot = key_slot(greylist_key(network_of(address)))
            self.assertEqual(self.cluster.master_of(slot), destination)
            self.assertEqual(self.cluster.node(destination).cli("EXISTS", greylist_key(network_of(address))), "1")
        self.cluster.wait_ok()


class SentinelTest(HaCase):
    DEPLOYMENT = SentinelGroup

    @property
    def group(self):
        return self.deployment

    def store_settings(self):
        return {"backend": "redis", "mode": "sentinel", "url": self.group.urls, "master": SentinelGroup.NAME,
                "timeout": "300ms"}

    def restart_if_dead(self, port):
        """After a test that failed halfway: the group whole again."""
        if not self.group.server(port).running():
            self.group.server(port).start()
            self.group.wait_settled()

    def load_addresses(self):
        return ["198.18.%d.10" % i for i in range(SESSIONS)]

    def test_greylist_ratelimit_and_admin(self):
        flt = self.start()
        flt.wait_for_log(r"store: redis sentinel mymaster: master at 127\.0\.0\.1:%d" % self.group.master())
        self.assertGreylisted(self.attempt("198.18.200.1"))
        time.sleep(DELAY + 0.2)
        self.assertPassed(self.attempt("198.18.200.1"))
        codes = [self.attempt("198.19.200.5").reply_to("RCPT").code for _ in range(4)]
        self.assertEqual(codes, [451, 451, 451, OVER[0]])
        self.assertIn("passed 1", self.admin(flt, "greylist", "stats"))
        self.assertIn("3 events, full", self.admin(flt, "ratelimit", "show", "198.19.200.5"))
        master = self.group.server(self.group.master())
        self.assertEqual(master.cli("EXISTS", greylist_key(network_of("198.18.200.1"))), "1")

    def test_killed_master_under_load_and_restarted_old_master(self):
        flt = self.start()
        old = self.group.master()
        addresses = self.load_addresses()

        def kill():
            log("sentinel: kill -9 of master %d" % old)
            self.group.server(old).kill()
            self.addCleanup(self.restart_if_dead, old)
        load, killed_at = self.under_load(flt, addresses, kill, recovered(addresses))
        report = self.report_failover("sentinel kill -9 of the master", load, killed_at, addresses)
        self.assertGreater(report["store_errors"], 0)
        self.assertIsNotNone(report["recovered_s"])
        new = self.group.master()
        self.assertNotEqual(new, old)
        flt.wait_for_log(r"store: redis sentinel mymaster: master moved from 127\.0\.0\.1:%d to " % old)
        self.assertIn("to 127.0.0.1:%d " % new, flt.find_log(r"master moved from")[-1])

        # The old master, started again as a master (as its configuration
        # would say), takes writes until the sentinels demote it: the
        # filter must send it none.  Its command counts start at zero.
        restarted = self.group.server(old).start()
        restarted.cli("REPLICAOF", "NO", "ONE")
        self.assertEqual(restarted.role(), "master")
        load, _ = self.under_load(flt, addresses, lambda: None,
                                  lambda load, at: time.monotonic() - at > 2.0)
        still_master = restarted.role() == "master"
        scripts = evalsha_calls(restarted) + eval_calls(restarted)
        log("sentinel: restarted old master %d (%s): %d scripts ran on it; %d verdicts meanwhile"
            % (old, "still master" if still_master else "demoted already", scripts, len(load.verdicts())))
        self.assertTrue(still_master, "the check came too late to prove anything")
        self.assertEqual(scripts, 0)
        self.assertEqual([v for v in load.verdicts() if v.kind != "greylisted"], [])
        self.group.wait_settled()

    def test_sentinel_failover_under_load(self):
        flt = self.start()
        old = self.group.master()
        addresses = self.load_addresses()

        def failover():
            self.assertEqual(self.group.sentinels[0].cli("SENTINEL", "FAILOVER", SentinelGroup.NAME), "OK")

        old_server = self.group.server(old)
        self.switched_at = None
        self.scripts_after_switch = None

        def switched(load, event_at):
            # The old master stays a master for seconds after the switch:
            # its script count half a second after it must not grow.
            if self.switched_at is None and self.group.named_master() not in (None, old):
                self.switched_at = time.monotonic()
            if self.switched_at is None or time.monotonic() - self.switched_at < 0.5:
                return False
            if self.scripts_after_switch is None:
                self.scripts_after_switch = evalsha_calls(old_server)
            good = [v for v in load.verdicts(since=self.switched_at) if v.kind == "greylisted"]
            return len(good) >= SESSIONS and time.monotonic() - self.switched_at > 2.0
        load, started = self.under_load(flt, addresses, failover, switched)
        report = self.report_failover("SENTINEL FAILOVER", load, started, addresses)
        still_master = old_server.role() == "master"
        scripts_at_end = evalsha_calls(old_server)
        log("sentinel: SENTINEL FAILOVER: the sentinels named the new master %.2f s after the command; the old "
            "master (%s) ran %d scripts from 0.5 s after that to the end"
            % (self.switched_at - started, "still master" if still_master else "demoted",
               scripts_at_end - self.scripts_after_switch))
        self.assertTrue(still_master, "the check came too late to prove anything")
        self.assertEqual(scripts_at_end, self.scripts_after_switch)
        new = self.group.master()
        self.assertNotEqual(new, old)
        flt.wait_for_log(r"master moved from 127\.0\.0\.1:%d to " % old)
        self.assertIn("to 127.0.0.1:%d " % new, flt.find_log(r"master moved from")[-1])
        # A planned failover costs at most a few verdicts.
        self.assertLess(report["store_errors"], SESSIONS * 3)
        self.group.wait_settled()


if __name__ == "__main__":
    unittest.main()
