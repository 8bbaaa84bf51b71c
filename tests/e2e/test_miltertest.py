"""The core scenarios at the milter protocol level, with miltertest as the MTA.

Each test starts the filter on a free port and runs a Lua script (see
harness.MILTERTEST_PRELUDE for expect(), open() and step()); the script fails
with an "ERROR: ..." line when a reply is not the one expected.  HELO goes
out before the MAIL macros: miltertest would otherwise send it implicitly
and drop the macros declared before it.
"""

import unittest

from harness import (BASE_POLICY, EXTERNAL_IP, RELAY_RULES, FilterTestCase,
                     decision, miltertest, policy, rule_line)

POLICY = policy(BASE_POLICY, RELAY_RULES)

# A session up to MAIL FROM from CLIENT_IP ("i" is the queue id, set at MAIL
# as Postfix does); AUTH is "" or an {auth_authen} login.
SESSION = """
local conn = open(sock)
expect(conn, "connect", mt.conninfo(conn, "mail.example.net", "%(ip)s"), SMFIR_CONTINUE)
step(conn, "helo", "mail.example.net")
mt.macro(conn, SMFIC_MAIL, "i", "4QueueId1"%(auth)s)
expect(conn, "mail", mt.mailfrom(conn, "<someone@sender.example>"), SMFIR_CONTINUE)
"""

MESSAGE = """
step(conn, "header", "Subject", "%(subject)s")
step(conn, "eoh")
step(conn, "body", "Hello.\\r\\n")
"""


def session(ip=EXTERNAL_IP, login=None):
    auth = ', "{auth_authen}", "%s"' % login if login else ""
    return SESSION % {"ip": ip, "auth": auth}


def message(subject="hello"):
    return MESSAGE % {"subject": subject}


class MiltertestTest(FilterTestCase):

    def run_script(self, flt, script):
        code, output = miltertest(script, self.tmp.path, {"sock": flt.milter_socket})
        self.assertEqual(code, 0, "miltertest failed:\n%s\n--- script:\n%s" % (output, script))
        self.assertFilterAlive(flt)
        return output

    def test_external_client_cannot_relay(self):
        flt = self.start_filter(POLICY)
        self.run_script(flt, session() + """
expect(conn, "foreign rcpt", mt.rcptto(conn, "<user@foreign.example>"), SMFIR_REPLYCODE)
expect(conn, "local rcpt", mt.rcptto(conn, "<user@example.com>"), SMFIR_CONTINUE)
mt.disconnect(conn)
""")
        self.assertLogged(flt, *decision("rcpt", "reject", rule_line(POLICY, "Relay access denied")))

    def test_authenticated_client_may_relay(self):
        flt = self.start_filter(POLICY)
        self.run_script(flt, session(login="alice") + """
expect(conn, "foreign rcpt", mt.rcptto(conn, "<user@foreign.example>"), SMFIR_CONTINUE)
mt.disconnect(conn)
""" + session() + """
expect(conn, "foreign rcpt, not authenticated", mt.rcptto(conn, "<user@foreign.example>"), SMFIR_REPLYCODE)
mt.disconnect(conn)
""")

    def test_trusted_client_may_relay(self):
        flt = self.start_filter(POLICY)
        self.run_script(flt, """
local conn = open(sock)
local err = mt.conninfo(conn, "trusted.example.net", "192.0.2.10")
if err ~= nil then error("connect failed: " .. err) end
local reply = mt.getreply(conn)
if reply == SMFIR_CONTINUE then
    -- the filter may keep listening; then nothing later may refuse
    expect(conn, "mail", mt.mailfrom(conn, "<someone@sender.example>"), SMFIR_CONTINUE)
    expect(conn, "foreign rcpt", mt.rcptto(conn, "<user@foreign.example>"), SMFIR_CONTINUE)
elseif reply ~= SMFIR_ACCEPT then
    error("connect: reply '" .. string.char(reply) .. "', expected accept or continue")
end
mt.disconnect(conn)
""" + session() + """
expect(conn, "foreign rcpt from outside", mt.rcptto(conn, "<user@foreign.example>"), SMFIR_REPLYCODE)
mt.disconnect(conn)
""")

    def test_reject_text_at_eom(self):
        rules = policy(BASE_POLICY, """\
on eom { reject 550 5.7.1 "No thanks, ${client.ip}" if header("Subject") =~ /spam/i }
""")
        flt = self.start_filter(rules)
        self.run_script(flt, session() + """
step(conn, "rcpt", "<user@example.com>")
""" + message("Buy SPAM now") + """
expect(conn, "eom", mt.eom(conn), SMFIR_REPLYCODE)
if not mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1", "No thanks, %s") then
    error("eom: not the rule's reply 550 5.7.1 'No thanks, %s'")
end
mt.disconnect(conn)
""" % (EXTERNAL_IP, EXTERNAL_IP))

    def test_reject_at_mail_with_auth_macro(self):
        rules = policy(BASE_POLICY, """\
on mail { reject 553 5.7.1 "Sender ${sender} is not owned by ${auth.user}" if authenticated and auth.user != "alice" }
""")
        flt = self.start_filter(rules)
        self.run_script(flt, """
local conn = open(sock)
expect(conn, "connect", mt.conninfo(conn, "mail.example.net", "%s"), SMFIR_CONTINUE)
step(conn, "helo", "mail.example.net")
mt.macro(conn, SMFIC_MAIL, "i", "4QueueId2", "{auth_authen}", "mallory")
expect(conn, "mail", mt.mailfrom(conn, "<boss@example.com>"), SMFIR_REPLYCODE)
mt.disconnect(conn)
local conn2 = open(sock)
expect(conn2, "connect", mt.conninfo(conn2, "mail.example.net", "%s"), SMFIR_CONTINUE)
step(conn2, "helo", "mail.example.net")
mt.macro(conn2, SMFIC_MAIL, "i", "4QueueId3", "{auth_authen}", "alice")
expect(conn2, "mail", mt.mailfrom(conn2, "<boss@example.com>"), SMFIR_CONTINUE)
mt.disconnect(conn2)
""" % (EXTERNAL_IP, EXTERNAL_IP))
        self.assertLogged(flt, *decision("mail", "reject", rule_line(rules, "is not owned by")))

    def test_add_header(self):
        flt = self.start_filter(policy(BASE_POLICY, 'on rcpt { add-header X-Portcullis "checked ${client.ip}" }'))
        self.run_script(flt, session() + """
expect(conn, "rcpt", mt.rcptto(conn, "<user@example.com>"), SMFIR_CONTINUE)
""" + message() + """
local err = mt.eom(conn)
if err ~= nil then error("eom failed: " .. err) end
local reply = mt.getreply(conn)
if reply ~= SMFIR_CONTINUE and reply ~= SMFIR_ACCEPT then
    error("eom: reply '" .. string.char(reply) .. "'")
end
local value = "checked %s"
if not (mt.eom_check(conn, MT_HDRADD, "X-Portcullis", value)
        or mt.eom_check(conn, MT_HDRINSERT, "X-Portcullis", value)) then
    error("no header X-Portcullis: " .. value .. " (got: " ..
          tostring(mt.getheader(conn, "X-Portcullis", 0)) .. ")")
end
mt.disconnect(conn)
""" % EXTERNAL_IP)


if __name__ == "__main__":
    unittest.main()
