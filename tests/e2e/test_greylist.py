"""Greylisting through a real Postfix, on a real redis-server and on the
memory store.

The policy greylists every unauthenticated client with a 2 s delay, so a
retry is a sleep away.  Clients are posed with XCLIENT ADDR; each test uses
its own sender address, so the triplets of one test never meet another's
(the Redis server lives for the whole class).
"""

import os
import time
import unittest

from harness import (BASE_POLICY, PostfixTestCase, WithRedis, decision, free_port, policy,
                     portcullis, rule_line, wait_until, write_file)

DELAY = 2
POLICY = policy(BASE_POLICY, """\
on connect { accept if client.ip in trusted }
on rcpt {
    greylist delay %ds window 1h expire 1d awl 3 if not authenticated
}
""" % DELAY)
GREYLIST_LINE = rule_line(POLICY, "greylist delay")

GREYLISTED = "4.7.1 Greylisted, please try again in %d seconds"
UNAVAILABLE = (451, "4.3.0 Temporary failure, please try again later")


class GreylistCase(PostfixTestCase):
    """Helpers shared by the Redis and memory-store classes."""

    def sender(self, tag=""):
        return "%s%s@sender.example" % (self._testMethodName.replace("_", "-"), tag)

    def attempt(self, addr, to="user@example.com", sender=None, **kwargs):
        return self.send_external(to, addr=addr, sender=sender or self.sender(), **kwargs)

    def assertGreylisted(self, transcript, wait=None):
        reply = transcript.reply_to("RCPT")
        self.assertEqual(reply.code, 451, transcript)
        if wait is not None:
            self.assertEqual(reply.text, GREYLISTED % wait, transcript)
        else:
            self.assertRegex(reply.text, r"^4\.7\.1 Greylisted, please try again in \d+ seconds$")
        self.assertFalse(transcript.delivered, transcript)

    def assertDelivered(self, transcript, to="user@example.com"):
        self.assertEqual(transcript.reply_to("RCPT").code, 250, transcript)
        self.assertEqual(self.delivered_recipients(transcript), [to])

    def pass_triplet(self, addr, sender=None, flt=None):
        """First attempt greylisted, the retry after the delay delivered."""
        self.assertGreylisted(self.attempt(addr, sender=sender))
        time.sleep(DELAY + 0.2)
        self.assertDelivered(self.attempt(addr, sender=sender))


class RedisGreylistTest(WithRedis, GreylistCase):

    def redis_settings(self, **store):
        settings = {"backend": "redis", "url": self.redis.url, "timeout": "200ms"}
        settings.update(store)
        return {"store": settings}

    def start(self, name=None, port=None, **store):
        kwargs = {"settings": self.redis_settings(**store)}
        if name:
            kwargs["name"] = name
        if port:
            kwargs["address"] = ("inet", port)
        return self.start_filter(POLICY, **kwargs)

    def admin(self, flt, *args):
        proc = portcullis("greylist", *args, "-c", flt.config_file)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        return proc.stdout

    def test_first_attempt_early_retry_and_pass(self):
        flt = self.start()
        first = self.attempt("198.18.1.10")
        self.assertGreylisted(first, wait=DELAY)
        flt.wait_for_log(*decision("rcpt", "greylist defer", GREYLIST_LINE), r"reason=new wait=%ds" % DELAY)

        early = self.attempt("198.18.1.10")
        self.assertGreylisted(early)
        flt.wait_for_log(r"rcpt: greylist defer .*reason=early")

        time.sleep(DELAY + 0.2)
        self.assertDelivered(self.attempt("198.18.1.10"))
        flt.wait_for_log(*decision("rcpt", "greylist pass", GREYLIST_LINE), r"reason=pass")

        # Redis holds it under the prefix, hashed, with a TTL.
        keys = self.redis.keys("pc:g:*")
        self.assertTrue(keys, "no triplet key in Redis")
        ttl = int(self.redis.cli("PTTL", keys[0]).stdout.split()[-1])
        self.assertGreater(ttl, 0)

    def test_same_slash24_shares_a_passed_triplet(self):
        self.start()
        self.pass_triplet("198.18.2.20")
        self.assertDelivered(self.attempt("198.18.2.201"))
        self.assertGreylisted(self.attempt("198.18.3.20"))

    def test_ipv6_groups_by_slash64(self):
        self.start()
        self.pass_triplet("IPV6:2001:db8:aa:bb::1")
        self.assertDelivered(self.attempt("IPV6:2001:db8:aa:bb:ffff::99"))
        self.assertGreylisted(self.attempt("IPV6:2001:db8:aa:bc::1"))

    def test_network_skips_greylisting_after_awl_passes(self):
        flt = self.start()
        # Letters, not digits: VERP folding makes sender1 and sender2 one sender.
        for tag in "abc":
            self.pass_triplet("198.18.4.30", sender=self.sender(tag))
        stranger = self.attempt("198.18.4.31", sender="someone-new@elsewhere.example", to="other@example.com")
        self.assertDelivered(stranger, to="other@example.com")
        flt.wait_for_log(r"rcpt: greylist pass .*reason=awl")
        self.assertIn("auto-whitelisted 1", self.admin(flt, "stats"))

    def test_admin_allow_list_drop_and_stats(self):
        flt = self.start()
        self.assertGreylisted(self.attempt("198.18.5.40"))
        listed = self.admin(flt, "list", "--client", "198.18.5.40")
        self.assertRegex(listed, r"pending\s+198\.18\.5\.0/24\s+<%s>\s+<user@example\.com>" % self.sender())

        out = self.admin(flt, "allow", "--client", "198.18.6.41", "--sender", self.sender("x"),
                         "--rcpt", "user@example.com")
        self.assertIn("allowed 198.18.6.0/24", out)
        self.assertDelivered(self.attempt("198.18.6.41", sender=self.sender("x")))

        self.admin(flt, "allow", "--client", "198.18.7.77")
        self.assertDelivered(self.attempt("198.18.7.78", sender=self.sender("y")))
        self.assertIn("allowed 1", self.admin(flt, "stats"))
        out = self.admin(flt, "drop", "--client", "198.18.7.77")
        self.assertIn("dropped network 198.18.7.0/24", out)
        self.assertEqual(self.admin(flt, "list", "--client", "198.18.7.77").count("passed"), 0)
        self.assertGreylisted(self.attempt("198.18.7.78", sender=self.sender("z")))

    def test_state_survives_a_filter_restart(self):
        flt = self.start()
        self.assertGreylisted(self.attempt("198.18.8.50"))
        flt.stop()
        time.sleep(DELAY + 0.2)
        self.start(name="restarted")
        self.assertDelivered(self.attempt("198.18.8.50"))

    def test_two_filters_on_one_redis_share_state(self):
        """Two MX hosts: Postfix talks to one filter, then to the other."""
        self.start(name="mx1")
        other_port = free_port()
        self.start(name="mx2", port=other_port)
        self.assertGreylisted(self.attempt("198.18.9.60"))
        time.sleep(DELAY + 0.2)
        self.postfix.set(smtpd_milters="inet:127.0.0.1:%d" % other_port)
        try:
            self.assertDelivered(self.attempt("198.18.9.60"))
            self.filters[1].wait_for_log(r"rcpt: greylist pass .*reason=pass")
        finally:
            self.postfix.set(smtpd_milters="inet:127.0.0.1:%d" % self.milter_port)

    def test_redis_outage_follows_on_error_and_recovers(self):
        tempfail = self.start(name="tempfail")
        self.assertGreylisted(self.attempt("198.18.10.70"))
        self.redis.kill()
        try:
            for _ in range(3):
                reply = self.attempt("198.18.10.70").reply_to("RCPT")
                self.assertEqual((reply.code, reply.text), UNAVAILABLE)
            tempfail.wait_for_log(r"rcpt: greylist defer .*reason=store-error on_error=tempfail")
            tempfail.wait_for_log(r"store: redis 127\.0\.0\.1:%d/0 unreachable" % self.redis.port)
        finally:
            self.redis.start()
        self.assertFilterAlive(tempfail)
        # Back without a restart of the filter: Redis lost everything, so
        # the triplet is new again.
        wait_until(lambda: self.attempt("198.18.10.70").reply_to("RCPT").text.startswith("4.7.1"),
                   15, "greylisting to work again after Redis came back", interval=0.5)
        tempfail.wait_for_log(r"store: redis .* reachable again")
        tempfail.stop()

        accept = self.start(name="accept", on_error="accept")
        self.redis.kill()
        try:
            self.assertDelivered(self.attempt("198.18.10.71"))
            accept.wait_for_log(r"rcpt: greylist pass .*reason=store-error on_error=accept")
        finally:
            self.redis.start()
        self.assertFilterAlive(accept)

    def test_a_redis_that_stops_answering_costs_at_most_the_timeout(self):
        flt = self.start(timeout="300ms")
        self.assertGreylisted(self.attempt("198.18.11.80"))
        self.redis.pause()
        try:
            started = time.monotonic()
            reply = self.attempt("198.18.11.80").reply_to("RCPT")
            took = time.monotonic() - started
            self.assertEqual((reply.code, reply.text), UNAVAILABLE)
        finally:
            self.redis.resume()
        # The whole SMTP session, not just the store call: generous bound,
        # far below Postfix's 20 s milter_command_timeout.
        self.assertLess(took, 5, "a stalled Redis held the session %.1f s" % took)
        self.assertFilterAlive(flt)
        time.sleep(DELAY + 0.2)
        wait_until(lambda: self.attempt("198.18.11.80").reply_to("RCPT").code == 250, 15,
                   "the paused Redis to be used again", interval=0.5)

    def test_start_refused_when_redis_is_unreachable(self):
        path = os.path.join(self.tmp.path, "startup")
        os.makedirs(path, exist_ok=True)
        write_file(os.path.join(path, "test.rules"), POLICY)
        config = write_file(os.path.join(path, "portcullis.conf"), """\
[milter]
socket = "inet:%d@127.0.0.1"
user = ""
[policy]
file = "test.rules"
[store]
backend = "redis"
url = "redis://127.0.0.1:%d/0"
[log]
target = "stderr"
""" % (free_port(), free_port()))
        proc = portcullis("run", "-f", "-c", config)
        self.assertEqual(proc.returncode, 3, proc.stdout)
        self.assertIn("store unreachable", proc.stdout)


class MemoryGreylistTest(GreylistCase):

    def test_snapshot_carries_state_across_a_restart(self):
        flt = self.start_filter(POLICY, name="memory")
        self.assertGreylisted(self.attempt("198.18.12.90"))
        snapshot = flt.config["store"]["snapshot"]
        flt.stop()
        self.assertTrue(os.path.exists(snapshot), "no snapshot written at shutdown")
        listed = portcullis("greylist", "list", "-c", flt.config_file)
        self.assertIn("pending", listed.stdout, listed.stdout)

        time.sleep(DELAY + 0.2)
        again = self.start_filter(POLICY, name="memory-again",
                                  settings={"store": {"backend": "memory", "snapshot": snapshot}})
        self.assertDelivered(self.attempt("198.18.12.90"))
        again.wait_for_log(r"rcpt: greylist pass .*reason=pass")

    def test_edits_without_the_daemon_need_redis(self):
        # The running daemon takes edits of its memory store on its control
        # socket (test_control.py); once it is gone, only Redis could.
        flt = self.start_filter(POLICY, name="memory-edit")
        flt.stop()
        proc = portcullis("greylist", "allow", "--client", "198.18.13.91", "-c", flt.config_file)
        self.assertEqual(proc.returncode, 2, proc.stdout)
        self.assertIn('needs the running daemon (it listens on control.socket) or store.backend = "redis"',
                      proc.stdout)


if __name__ == "__main__":
    unittest.main()
