"""The core scenarios again, on the libmilter engine (milter.engine =
"libmilter"), through Postfix, Sendmail and miltertest.

Every other e2e file runs on the native engine, the default.  These are
the same test classes, imported with the engine switched, so both engines
must pass the same assertions: the relay guard, replies at every stage
with their codes and texts, per-recipient verdicts, added headers,
quarantine, monitor mode, reload and the drain at SIGTERM, and a second
SMTP session on one milter connection (SMFIC_QUIT_NC).
"""

import os

os.environ["PORTCULLIS_ENGINE"] = "libmilter"

import harness  # noqa: E402  (the engine must be chosen before the harness reads it)

assert harness.ENGINE == "libmilter"

from test_actions import AcceptTest, HeaderTest, MonitorTest, ReplyTextTest  # noqa: E402,F401
from test_engine import ReusedConnectionTest  # noqa: E402,F401
from test_miltertest import MiltertestTest  # noqa: E402,F401
from test_relay import RelayTest  # noqa: E402,F401
from test_reload import ReloadTest  # noqa: E402,F401
from test_sendmail import SendmailTest  # noqa: E402,F401
