"""Rate limits and the sender-login check through a real Postfix, with a
real redis-server (and the memory store for the admin command's limits).

Authenticated clients are posed with XCLIENT LOGIN, unauthenticated ones
with XCLIENT ADDR.  Each test uses its own login or client address, so the
buckets of one test never meet another's (Redis lives for the whole class).
"""

import re
import threading
import time
import unittest

from harness import (BASE_POLICY, EXTERNAL_IP, PostfixTestCase, SMTPClient, WithRedis, decision,
                     free_port, policy, portcullis, rule_line, wait_until)

POLICY = policy(BASE_POLICY, """\
map sender_logins file "sender-logins.txt"
on connect { accept if client.ip in trusted }
on mail {
    reject 553 5.7.1 "Sender ${sender} is not owned by ${auth.user}"
        if authenticated and not auth.user in sender_logins[sender]
}
on rcpt {
    reject 554 5.7.1 "Relay access denied" if not rcpt.domain in local_domains and not authenticated
    ratelimit auth.user 5/1m if authenticated
    ratelimit client.ip 3/1m if not authenticated
}
""")
USER_LINE = rule_line(POLICY, "ratelimit auth.user")
CLIENT_LINE = rule_line(POLICY, "ratelimit client.ip")
LOGIN_LINE = rule_line(POLICY, "is not owned by")
LOGINS = """\
# test owners
@sender.example   alice carol dave erin frank grace heidi
bob@other.example bob
"""
OVER = (450, "4.7.1 Rate limit exceeded, try again later")
UNAVAILABLE = (451, "4.3.0 Temporary failure, please try again later")


class RatelimitTest(WithRedis, PostfixTestCase):

    def start(self, name=None, port=None, policy_text=POLICY, **store):
        settings = {"backend": "redis", "url": self.redis.url, "timeout": "300ms"}
        settings.update(store)
        kwargs = {"settings": {"store": settings}, "files": {"sender-logins.txt": LOGINS}}
        if name:
            kwargs["name"] = name
        if port:
            kwargs["address"] = ("inet", port)
        return self.start_filter(policy_text, **kwargs)

    def as_user(self, login, recipients, sender=None, addr=EXTERNAL_IP):
        return self.send_external(recipients, addr=addr, sender=sender or "%s@sender.example" % login.lower(),
                                  xclient={"login": login})

    def rcpt_codes(self, transcript):
        return [r.code for r in transcript.replies_to("RCPT")]

    def admin(self, flt, *args, code=0):
        proc = portcullis("ratelimit", *args, "-c", flt.config_file)
        self.assertEqual(proc.returncode, code, proc.stdout)
        return proc.stdout

    def test_user_limit_refuses_the_sixth_and_frees_a_minute_after_the_first(self):
        flt = self.start()
        recipients = ["u%s@foreign.example" % c for c in "abcdef"]
        first = time.monotonic()
        sent = self.as_user("alice", recipients)
        counted_by = time.monotonic()   # the five events were counted between first and now
        self.assertEqual(self.rcpt_codes(sent), [250] * 5 + [450], sent)
        sixth = sent.replies_to("RCPT")[5]
        self.assertEqual((sixth.code, sixth.text), OVER)
        self.assertEqual(self.delivered_recipients(sent), sorted(recipients[:5]))
        flt.wait_for_log(*decision("rcpt", "ratelimit defer", USER_LINE),
                         r"bucket=auth\.user:5/1m levels=5/5/1m over=5/1m retry=\d+s")

        # Another case and a +extension name the same bucket.
        again = self.as_user("ALICE", ["later@foreign.example"], sender="alice+x@sender.example")
        self.assertEqual(self.rcpt_codes(again), [450], again)
        shown = self.admin(flt, "show", "Alice")
        self.assertRegex(shown, r"bucket 'auth\.user:5/1m' \(test\.rules:%d\)\n  5/1m +5 events, full, "
                                r"a slot frees in (\d+s|1m)" % USER_LINE)

        # Still full before the minute is over; free within a minute and one
        # slot (1 s) after the events.
        time.sleep(max(0, first + 55 - time.monotonic()))
        self.assertEqual(self.rcpt_codes(self.as_user("alice", ["early@foreign.example"])), [450])
        time.sleep(max(0, counted_by + 61.2 - time.monotonic()))
        freed = self.as_user("alice", ["freed@foreign.example"])
        self.assertEqual(self.delivered_recipients(freed), ["freed@foreign.example"])

    def test_per_ip_limit_for_unauthenticated_clients(self):
        flt = self.start()
        for n in range(3):
            sent = self.send_external("user@example.com", addr="198.18.30.1", sender="s%s@sender.example" % "abc"[n])
            self.assertEqual(self.rcpt_codes(sent), [250], sent)
        over = self.send_external("user@example.com", addr="198.18.30.1")
        self.assertEqual((over.reply_to("RCPT").code, over.reply_to("RCPT").text), OVER, over)
        flt.wait_for_log(*decision("rcpt", "ratelimit defer", CLIENT_LINE))
        # The next address has its own bucket; refused relaying is not counted.
        for _ in range(4):
            self.assertEqual(self.rcpt_codes(self.send_external("x@foreign.example", addr="198.18.30.2")), [554])
        other = self.send_external(["a@example.com", "b@example.com", "c@example.com", "d@example.com"],
                                   addr="198.18.30.2")
        self.assertEqual(self.rcpt_codes(other), [250, 250, 250, 450], other)

    def test_two_filters_on_one_redis_share_a_bucket(self):
        self.start(name="mx1")
        other_port = free_port()
        self.start(name="mx2", port=other_port)
        self.assertEqual(self.rcpt_codes(self.as_user("carol", ["a@foreign.example", "b@foreign.example",
                                                                "c@foreign.example"])), [250] * 3)
        self.postfix.set(smtpd_milters="inet:127.0.0.1:%d" % other_port)
        try:
            sent = self.as_user("carol", ["d@foreign.example", "e@foreign.example", "f@foreign.example"])
            self.assertEqual(self.rcpt_codes(sent), [250, 250, 450], sent)
            self.filters[1].wait_for_log(r"rcpt: ratelimit defer .*levels=5/5/1m")
        finally:
            self.postfix.set(smtpd_milters="inet:127.0.0.1:%d" % self.milter_port)

    def test_sender_login_mismatch_is_refused_553(self):
        flt = self.start()
        refused = self.as_user("alice", ["x@foreign.example"], sender="bob@other.example")
        reply = refused.reply_to("MAIL")
        self.assertEqual((reply.code, reply.text), (553, "5.7.1 Sender bob@other.example is not owned by alice"),
                         refused)
        flt.wait_for_log(*decision("mail", "reject", LOGIN_LINE))
        # The owner (whole address), and a domain's listed login (@domain).
        self.assertEqual(self.delivered_recipients(self.as_user("bob", ["y@foreign.example"],
                                                                sender="bob@other.example")),
                         ["y@foreign.example"])
        self.assertEqual(self.delivered_recipients(self.as_user("dave", ["z@foreign.example"])),
                         ["z@foreign.example"])

    def test_fifty_parallel_sessions_never_beat_the_limit(self):
        """50 sessions at once, 2 recipients each, on one login's bucket of 5
        a minute: exactly 5 recipients accepted and delivered."""
        self.start()
        results, lock = [], threading.Lock()

        def session(n):
            client = SMTPClient(self.postfix.port)
            try:
                client.hello(xclient={"addr": "198.18.31.%d" % (n + 1), "login": "erin"})
                client.command("MAIL FROM:<erin@sender.example>")
                codes = [client.command("RCPT TO:<r%d-%s@foreign.example>" % (n, c)).code for c in "ab"]
                if 250 in codes:
                    client.data("Subject: burst %d\n\nhello\n" % n)
                else:
                    client.command("RSET")
                with lock:
                    results.extend(codes)
            finally:
                client.close()

        threads = [threading.Thread(target=session, args=(n,)) for n in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        self.assertEqual(len(results), 100, "every session should have sent 2 RCPTs")
        self.assertEqual(results.count(250), 5, "accepted recipients: %d" % results.count(250))
        self.assertEqual(results.count(450), 95)
        burst = re.compile(r"^r\d+-[ab]@foreign\.example$")

        def delivered():
            return [r for m in self.sink.messages() for r in m.recipients if burst.match(r)]
        wait_until(lambda: len(delivered()) >= 5, 30, "the 5 accepted recipients at the sink")
        time.sleep(1)   # nothing more may follow
        self.assertEqual(len(delivered()), 5, delivered())

    def test_admin_reset_frees_the_bucket(self):
        flt = self.start()
        sent = self.as_user("frank", ["u%s@foreign.example" % c for c in "abcdef"])
        self.assertEqual(self.rcpt_codes(sent), [250] * 5 + [450], sent)
        self.assertIn("bucket 'auth.user:5/1m': reset", self.admin(flt, "reset", "frank"))
        self.assertEqual(self.rcpt_codes(self.as_user("frank", ["again@foreign.example"])), [250])
        self.assertIn("no events", self.admin(flt, "reset", "nobody"))
        usage = self.admin(flt, "show", "a", "b", code=2)
        self.assertIn("no ratelimit rule has a key of 2 fields", usage)

    def test_redis_outage_follows_on_error(self):
        tempfail = self.start(name="tempfail")
        self.redis.kill()
        try:
            reply = self.as_user("grace", ["a@foreign.example"]).reply_to("RCPT")
            self.assertEqual((reply.code, reply.text), UNAVAILABLE)
            tempfail.wait_for_log(r"rcpt: ratelimit defer .*reason=store-error on_error=tempfail")
        finally:
            self.redis.start()
        self.assertFilterAlive(tempfail)
        tempfail.stop()

        accept = self.start(name="accept", on_error="accept")
        self.redis.kill()
        try:
            self.assertEqual(self.delivered_recipients(self.as_user("heidi", ["b@foreign.example"])),
                             ["b@foreign.example"])
            accept.wait_for_log(r"rcpt: ratelimit pass .*reason=store-error on_error=accept")
        finally:
            self.redis.start()
        self.assertFilterAlive(accept)


CAPS_POLICY = policy(BASE_POLICY, """\
on mail { reject 552 5.3.4 "Message size exceeds fixed limit" if size > 10K }
on rcpt { tempfail 452 4.5.3 "Too many recipients" if rcpt.count >= 2 }
on eom { reject 552 5.3.4 "Message size exceeds fixed limit" if size > 10K }
""")
MAIL_SIZE_LINE = rule_line(CAPS_POLICY, "on mail")
EOM_SIZE_LINE = rule_line(CAPS_POLICY, "on eom")


class CapsTest(PostfixTestCase):
    """Recipient and size caps: SIZE= at MAIL, the real size at eom."""
    postfix_params = {"message_size_limit": "0"}

    def test_recipient_cap_per_message(self):
        self.start_filter(CAPS_POLICY)
        sent = self.send_external(["a@example.com", "b@example.com", "c@example.com"])
        self.assertRcptReplies(sent, [(250, None), (250, None), (452, "4.5.3 Too many recipients")])
        self.assertEqual(self.delivered_recipients(sent), ["a@example.com", "b@example.com"])

    def test_size_declared_at_mail_and_real_at_eom(self):
        flt = self.start_filter(CAPS_POLICY)
        client = SMTPClient(self.postfix.port)
        self.addCleanup(client.close)
        client.hello(xclient={"addr": EXTERNAL_IP})
        declared = client.command("MAIL FROM:<a@sender.example> SIZE=20000")
        self.assertEqual((declared.code, declared.text), (552, "5.3.4 Message size exceeds fixed limit"))
        flt.wait_for_log(*decision("mail", "reject", MAIL_SIZE_LINE))

        # No SIZE= (or a lie): the real size decides at the end of the message.
        self.assertEqual(client.command("MAIL FROM:<a@sender.example> SIZE=100").code, 250)
        self.assertEqual(client.command("RCPT TO:<user@example.com>").code, 250)
        _, end = client.data("Subject: big\n\n" + ("x" * 70 + "\n") * 200)
        self.assertEqual((end.code, end.text), (552, "5.3.4 Message size exceeds fixed limit"))
        flt.wait_for_log(*decision("eom", "reject", EOM_SIZE_LINE))
        self.assertEqual(client.command("RSET").code, 250)
        self.assertEqual(client.command("MAIL FROM:<a@sender.example>").code, 250)
        self.assertEqual(client.command("RCPT TO:<user@example.com>").code, 250)
        _, small = client.data("Subject: small\n\nhello\n")
        self.assertEqual(small.code, 250)


class MemoryRatelimitTest(PostfixTestCase):

    def test_limits_on_the_memory_store_reset_by_the_daemon_or_redis(self):
        flt = self.start_filter(POLICY, name="memory", files={"sender-logins.txt": LOGINS})
        sent = self.send_external(["u%s@foreign.example" % c for c in "abcdef"], sender="alice@sender.example",
                                  xclient={"login": "alice"})
        self.assertEqual([r.code for r in sent.replies_to("RCPT")], [250] * 5 + [450], sent)
        # The running daemon answers for its live memory store.
        live = portcullis("ratelimit", "show", "alice", "-c", flt.config_file)
        self.assertEqual(live.returncode, 0, live.stdout)
        self.assertIn("5 events, full", live.stdout)
        flt.stop()
        # Without it, show reads the snapshot and reset needs Redis.
        shown = portcullis("ratelimit", "show", "alice", "-c", flt.config_file)
        self.assertEqual(shown.returncode, 0, shown.stdout)
        self.assertIn("5 events, full", shown.stdout)
        proc = portcullis("ratelimit", "reset", "alice", "-c", flt.config_file)
        self.assertEqual(proc.returncode, 2, proc.stdout)
        self.assertIn('needs the running daemon (it listens on control.socket) or store.backend = "redis"',
                      proc.stdout)


if __name__ == "__main__":
    unittest.main()
