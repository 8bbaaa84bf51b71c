"""The Debian package (debian/): built from a copy of the tree, installed
with dpkg, run as its systemd unit runs it, upgraded, removed and purged.

- Build: dpkg-source -b, then dpkg-buildpackage -us -uc -b with
  DEB_BUILD_OPTIONS="nocheck parallel=N" and the nocheck profile, in a copy
  of the tree; the time it took goes to stderr.  The results are kept in
  CACHE_DIR under a digest of the copied files, so another run on the same
  tree (the sanitizer pass of .ci/run) installs the same package without
  building it again; PORTCULLIS_PACKAGE_REBUILD=1 builds anyway.
- lintian -EI --pedantic on the .changes and the .dsc: no error (its whole
  report goes to stderr; debian/README.source says why each tag stays).
- Installed: each file where it belongs, /etc/portcullis as conffiles, the
  user, /var/lib/portcullis owned by it, the man pages when the tree has
  their generator; systemd-analyze verify accepts the unit and rates its
  sandbox "OK" (skipped where there is no systemd-analyze).
- `portcullis check` passes on /etc/portcullis, run as ExecStartPre runs it.
- The daemon started as the installed unit starts it: ExecStart's command
  line, as User= and Group=, with NoNewPrivileges, the empty capability
  bounding set and UMask (setpriv and umask), RuntimeDirectory= and
  StateDirectory=, and a NOTIFY_SOCKET that waits for READY=1 as systemd
  does (Type=notify).  Through Postfix: a trusted client's message is
  delivered, an external client's relay refused by the shipped policy's
  rule, an authenticated client's recipient passes the rate limits (the
  memory store); ExecReload reloads (RELOADING=1, then READY=1); SIGTERM
  stops it with exit 0 and the store's snapshot in /var/lib/portcullis.
  Not emulated: the mount, namespace and system-call sandbox
  (ProtectSystem=, SystemCallFilter=...), which needs systemd as PID 1.
  The milter socket is the unit's (inet:8891@127.0.0.1) unless that port
  is taken: then -o milter.socket= names a free one, and stderr says so.
  The daemon logs to syslog: where no /dev/log exists the test listens
  there and checks the decision lines too.
- dpkg -r leaves only the conffiles, the state and systemd's record that
  the unit is enabled; dpkg -P leaves the file tree as it was before.
- Reinstalling over edited conffiles keeps the edits; so does an upgrade
  whose own copy changed (with --force-confold: the new one beside it as
  .dpkg-dist), while a conffile nobody edited is updated.

Each class purges the package when done.  /var/lib/portcullis, which
contrib/install-deps.sh makes for runs by hand, is moved aside meanwhile
and put back.  Needs root, dpkg-dev, debhelper, lintian, setpriv.
"""

import grp
import hashlib
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

from harness import (CACHE_DIR, EXTERNAL_IP, SOURCE_DIR, PostfixTestCase, TempDir, can_connect,
                     free_port, run, tail, wait_until, write_file)

PACKAGE = "portcullis"
UNIT_FILE = "/lib/systemd/system/portcullis.service"
CONFIG_DIR = "/etc/portcullis"
STATE_DIR = "/var/lib/portcullis"
# Where installing and removing may leave files (dpkg's and apt's own
# records left out).
WATCHED_TREES = ("/etc", "/usr", "/var/lib")
UNWATCHED = ("/var/lib/dpkg", "/var/lib/apt")
# What `dpkg -r` may leave: the conffiles and their directories, the
# state, and deb-systemd-helper's record that the unit was enabled (so a
# reinstall keeps the administrator's choice); `dpkg -P` removes them all.
KEPT_ON_REMOVE = re.compile(r"^(/etc/portcullis(/.*)?|/var/lib/portcullis(/.*)?"
                            r"|/etc/systemd/system/[^/]+\.wants/portcullis\.service"
                            r"|/var/lib/systemd/deb-systemd-helper-enabled/(.*/)?portcullis\.service(\.dsh-also)?)$")
MAN_PAGES = ("/usr/share/man/man8/portcullis.8.gz", "/usr/share/man/man5/portcullis.conf.5.gz",
             "/usr/share/man/man5/portcullis.rules.5.gz")
DPKG_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


# ------------------------------------------------------------------ build

def tree_files(root):
    """The tree's files as the package is built from them, relative to
    ROOT: no VCS, no build directories, no products of an earlier build
    in the tree."""
    debian_products = {"portcullis", "portcullis-dbgsym", ".debhelper", "tmp", "files", "debhelper-build-stamp"}
    found = []
    for directory, subdirs, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        if relative == ".":
            subdirs[:] = [d for d in subdirs if d != ".git" and not d.startswith(("build", "obj-"))]
        elif relative == "debian":
            subdirs[:] = [d for d in subdirs if d not in debian_products]
            files = [f for f in files if f not in debian_products
                     and not f.endswith((".substvars", ".debhelper", ".debhelper.log"))]
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        links = [d for d in subdirs if os.path.islink(os.path.join(directory, d))]
        found += [os.path.normpath(os.path.join(relative, f)) for f in files + links if not f.endswith(".pyc")]
    return sorted(found)


def tree_digest(root, files):
    digest = hashlib.sha256()
    for name in files:
        path = os.path.join(root, name)
        digest.update(name.encode() + b"\0")
        if os.path.islink(path):
            digest.update(b"link:" + os.readlink(path).encode())
        else:
            digest.update(b"x" if os.access(path, os.X_OK) else b"-")
            with open(path, "rb") as f:
                digest.update(f.read())
        digest.update(b"\0")
    return digest.hexdigest()


def copy_tree(root, files, destination):
    for name in files:
        source, target = os.path.join(root, name), os.path.join(destination, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)


def package_version(root):
    with open(os.path.join(root, "debian", "changelog"), encoding="utf-8") as f:
        match = re.match(r"^portcullis \(([^)]+)\)", f.readline())
    if not match:
        raise RuntimeError("debian/changelog: no version on its first line")
    return match.group(1)


class Build:
    """The package built from SOURCE_DIR: .deb, .changes and .dsc paths,
    and how long dpkg-buildpackage took."""

    def __init__(self):
        files = tree_files(SOURCE_DIR)
        digest = tree_digest(SOURCE_DIR, files)
        version = package_version(SOURCE_DIR)
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        cache_root = os.path.join(CACHE_DIR, "deb")
        self.dir = os.path.join(cache_root, digest)
        self.deb = os.path.join(self.dir, "%s_%s_%s.deb" % (PACKAGE, version, arch))
        self.changes = os.path.join(self.dir, "%s_%s_%s.changes" % (PACKAGE, version, arch))
        self.dsc = os.path.join(self.dir, "%s_%s.dsc" % (PACKAGE, version))
        self.version = version
        seconds_file = os.path.join(self.dir, "build-seconds")
        if os.path.exists(seconds_file) and os.environ.get("PORTCULLIS_PACKAGE_REBUILD") != "1":
            with open(seconds_file) as f:
                self.seconds = float(f.read())
            sys.stderr.write("package: reusing %s, built from this same tree in %.0f s\n" % (self.deb, self.seconds))
            return
        shutil.rmtree(cache_root, ignore_errors=True)   # one tree's package at a time
        work = TempDir(prefix="portcullis-deb-")
        try:
            source = os.path.join(work.path, "%s-%s" % (PACKAGE, version))
            copy_tree(SOURCE_DIR, files, source)
            run(["dpkg-source", "-b", os.path.basename(source)], cwd=work.path, timeout=300)
            env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=%d" % (os.cpu_count() or 1),
                       DEB_BUILD_PROFILES="nocheck")
            started = time.monotonic()
            proc = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=source, env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace", timeout=1500)
            self.seconds = time.monotonic() - started
            if proc.returncode != 0:
                raise RuntimeError("dpkg-buildpackage exited %d:\n%s" % (proc.returncode, tail(proc.stdout, 12000)))
            os.makedirs(self.dir)
            for name in os.listdir(work.path):
                if os.path.isfile(os.path.join(work.path, name)):
                    shutil.copy2(os.path.join(work.path, name), self.dir)
            write_file(seconds_file, "%.1f\n" % self.seconds)
        finally:
            work.cleanup()
        sys.stderr.write("package: dpkg-buildpackage -us -uc -b (nocheck, parallel=%d) took %.0f s\n"
                         % (os.cpu_count() or 1, self.seconds))


BUILD = None


def setUpModule():
    global BUILD
    if os.geteuid() != 0:
        raise unittest.SkipTest("installs a package: needs root")
    if installed_version() is not None:
        raise RuntimeError("the %s package is installed already (left by a run that was killed?): "
                           "this test installs and purges it; dpkg -P %s first" % (PACKAGE, PACKAGE))
    BUILD = Build()


def tearDownModule():
    # Whatever failed, the machine is left without the package.
    if installed_version() is not None:
        purge()


# ------------------------------------------------------------------ dpkg

def installed_version():
    proc = run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", PACKAGE], check=False)
    if proc.returncode != 0 or not proc.stdout.startswith("installed "):
        return None
    return proc.stdout.split(" ", 1)[1].strip()


def dpkg(*args):
    return run(["dpkg"] + list(args), timeout=300, env=DPKG_ENV, stdin=subprocess.DEVNULL)


def purge():
    return dpkg("--purge", PACKAGE)


def file_tree():
    """Every path under WATCHED_TREES."""
    paths = set()
    for top in WATCHED_TREES:
        for directory, subdirs, files in os.walk(top):
            subdirs[:] = [d for d in subdirs if os.path.join(directory, d) not in UNWATCHED]
            paths.update(os.path.join(directory, name) for name in subdirs + files)
    return paths


class StateDirAside:
    """/var/lib/portcullis moved out of the way while the package owns it,
    and put back as it was."""

    def __init__(self):
        self.saved = STATE_DIR + ".e2e-saved-%d" % os.getpid()
        self.moved = os.path.lexists(STATE_DIR)
        if self.moved:
            os.rename(STATE_DIR, self.saved)

    def restore(self):
        if self.moved and not os.path.lexists(STATE_DIR):
            os.rename(self.saved, STATE_DIR)
            self.moved = False


class PackageCase:
    """Mixin: install the package for a class, purge it afterwards."""

    @classmethod
    def install_package(cls):
        cls.state_dir = StateDirAside()
        cls.tree_before = file_tree()
        dpkg("-i", BUILD.deb)

    @classmethod
    def remove_package(cls):
        try:
            if installed_version() is not None:
                purge()
        finally:
            if getattr(cls, "state_dir", None) is not None:
                cls.state_dir.restore()


# ------------------------------------------------------------------ unit

class Unit:
    """A systemd unit file: each SECTION/KEY's values in order (a key may
    repeat: ExecReload=, SystemCallFilter=)."""

    def __init__(self, path):
        self.path = path
        self.values = {}
        section = None
        with open(path, encoding="utf-8") as f:
            text = f.read().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            header = re.match(r"^\[(.+)\]$", line)
            if header:
                section = header.group(1)
                continue
            key, _, value = line.partition("=")
            self.values.setdefault((section, key.strip()), []).append(value.strip())

    def all(self, key, section="Service"):
        return self.values.get((section, key), [])

    def get(self, key, default=None, section="Service"):
        values = self.all(key, section)
        return values[-1] if values else default

    def command(self, key, mainpid=None):
        """The argv of the unit's KEY (ExecStart...), each of them; with
        MAINPID, $MAINPID expanded as systemd expands it."""
        commands = []
        for value in self.all(key):
            if value[:1] in "-@+!:":
                raise AssertionError("%s=%s: the test does not emulate the prefix %r" % (key, value, value[0]))
            argv = shlex.split(value)
            if mainpid is not None:
                argv = [str(mainpid) if word == "$MAINPID" else word for word in argv]
            commands.append(argv)
        return commands


def account(unit):
    user = unit.get("User", "root")
    return user, unit.get("Group", grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name)


def as_unit_user(unit):
    """setpriv arguments: the unit's User=, Group= (with the user's
    groups, as systemd gives them), NoNewPrivileges= and an empty
    CapabilityBoundingSet=."""
    user, group = account(unit)
    argv = ["setpriv", "--reuid", user, "--regid", group, "--init-groups"]
    if unit.get("NoNewPrivileges") == "yes":
        argv.append("--no-new-privs")
    if unit.get("CapabilityBoundingSet") == "":
        argv += ["--bounding-set", "-all", "--inh-caps", "-all"]
    return argv


def unit_environment(unit, notify_socket=None):
    """The environment systemd gives the unit's commands."""
    user, _ = account(unit)
    entry = pwd.getpwnam(user)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "USER": user,
           "LOGNAME": user, "HOME": entry.pw_dir, "SHELL": entry.pw_shell, "LANG": "C.UTF-8"}
    for key, base, variable in (("RuntimeDirectory", "/run", "RUNTIME_DIRECTORY"),
                                ("StateDirectory", "/var/lib", "STATE_DIRECTORY")):
        if unit.get(key):
            env[variable] = ":".join(os.path.join(base, name) for name in unit.get(key).split())
    if notify_socket:
        env["NOTIFY_SOCKET"] = notify_socket
    return env


def unit_umask(unit):
    mask = int(unit.get("UMask", "0022"), 8)
    return lambda: os.umask(mask)


def run_as_unit(unit, argv, timeout=60):
    """One of the unit's commands (ExecStartPre=...), as systemd runs it."""
    return subprocess.run(as_unit_user(unit) + argv, env=unit_environment(unit), preexec_fn=unit_umask(unit),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=timeout, cwd="/")


class NotifySocket:
    """The sd_notify(3) end systemd keeps for a Type=notify service."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.received = []

    def wait_for(self, assignment, timeout, alive):
        """Wait for a message holding the line ASSIGNMENT ("READY=1")
        while alive() is true; the messages read on the way are kept."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            self.sock.settimeout(0.2)
            try:
                message = self.sock.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                continue
            self.received.append(message)
            if assignment in message.split("\n"):
                return message
        raise AssertionError("no %s on the notify socket (got %r)" % (assignment, self.received))

    def close(self):
        self.sock.close()


class SyslogListener:
    """/dev/log while the test runs, when nothing else provides it: the
    daemon's log lines (syslog(3) datagrams) are kept."""

    PATH = "/dev/log"

    def __init__(self):
        self.lines = []
        self.sock = None
        if os.path.lexists(self.PATH):
            sys.stderr.write("package: %s exists (a syslog daemon): the daemon's log is not read\n" % self.PATH)
            return
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.PATH)
        os.chmod(self.PATH, 0o666)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    @property
    def listening(self):
        return self.sock is not None

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            self.lines.append(data.decode("utf-8", "replace"))

    def wait_for(self, regex, timeout=10):
        pattern = re.compile(regex)
        return wait_until(lambda: next((l for l in list(self.lines) if pattern.search(l)), None), timeout,
                          "/%s/ in the daemon's syslog" % regex)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            os.unlink(self.PATH)
            self.sock = None


class UnitProcess:
    """The unit's ExecStart=, started as systemd starts the service (as
    far as that can be done without systemd): its user, privileges,
    umask, environment, runtime and state directories, and the notify
    socket it reports READY=1 on."""

    def __init__(self, unit, tmp, extra_args=()):
        self.unit = unit
        self.dir = tmp.sub("unit-%d" % id(self))
        self.extra_args = list(extra_args)
        self.runtime_dirs = []
        self.argv = []
        self.proc = None
        self.notify = None
        # Where systemd would send them, the journal: a file here.
        self.output_file = os.path.join(self.dir, "output")

    def _directories(self):
        user, group = account(self.unit)
        uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
        for key, base in (("RuntimeDirectory", "/run"), ("StateDirectory", "/var/lib")):
            mode = int(self.unit.get(key + "Mode", "0755"), 8)
            for name in (self.unit.get(key) or "").split():
                path = os.path.join(base, name)
                if key == "RuntimeDirectory":
                    if os.path.lexists(path):
                        raise AssertionError("%s exists already; systemd would make it afresh" % path)
                    self.runtime_dirs.append(path)
                os.makedirs(path, exist_ok=True)
                os.chown(path, uid, gid)
                os.chmod(path, mode)

    def start(self, timeout=30):
        self._directories()
        self.notify = NotifySocket(self.dir)
        (argv,) = self.unit.command("ExecStart")
        self.argv = argv + self.extra_args
        with open(self.output_file, "wb") as output:
            self.proc = subprocess.Popen(as_unit_user(self.unit) + self.argv,
                                         env=unit_environment(self.unit, self.notify.path),
                                         preexec_fn=unit_umask(self.unit), cwd="/", stdin=subprocess.DEVNULL,
                                         stdout=output, stderr=subprocess.STDOUT)
        try:
            self.notify.wait_for("READY=1", timeout, self.alive)
        except AssertionError as error:
            raise AssertionError("%s\n%s" % (error, self.output()))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self, timeout=30):
        """Each ExecReload= in turn, as the unit's user; then RELOADING=1
        and READY=1 again."""
        for argv in self.unit.command("ExecReload", mainpid=self.proc.pid):
            proc = run_as_unit(self.unit, argv)
            if proc.returncode != 0:
                raise AssertionError("ExecReload %s exited %d:\n%s" % (argv, proc.returncode, proc.stdout))
        self.notify.wait_for("RELOADING=1", timeout, self.alive)
        self.notify.wait_for("READY=1", timeout, self.alive)

    def stop(self, timeout=45):
        """SIGTERM (systemd's KillSignal=); the exit code."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def output(self):
        """What the process wrote to stdout and stderr."""
        try:
            with open(self.output_file, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cleanup(self):
        if self.proc is not None:
            self.stop()
        if self.notify:
            self.notify.close()
        for path in self.runtime_dirs:   # RuntimeDirectoryPreserve=no
            shutil.rmtree(path, ignore_errors=True)


def process_status(pid):
    """/proc/PID/status as {field: value}."""
    with open("/proc/%d/status" % pid, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def milter_port(unit):
    """The port of the milter socket in the config file ExecStart names
    (-c): a socket = line, else the commented default the shipped file
    shows."""
    (argv,) = unit.command("ExecStart")
    with open(argv[argv.index("-c") + 1], encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^\[milter\]$(.*?)(^\[|\Z)", text, re.M | re.S).group(1)
    set_value = re.search(r'^socket\s*=\s*"inet:(\d+)@127\.0\.0\.1"', section, re.M)
    default = re.search(r'^#socket\s*=\s*"inet:(\d+)@127\.0\.0\.1"', section, re.M)
    return int((set_value or default).group(1))


def man_generator_in_tree():
    """Whether the tree installs man pages (the CMake rules of their
    generator): then the package must hold the three pages."""
    for directory, subdirs, files in os.walk(SOURCE_DIR):
        subdirs[:] = [d for d in subdirs if d not in (".git", "debian") and not d.startswith(("build", "obj-"))]
        if "CMakeLists.txt" in files:
            with open(os.path.join(directory, "CMakeLists.txt"), encoding="utf-8") as f:
                if re.search(r"CMAKE_INSTALL_MANDIR|share/man|TYPE\s+MAN\b", f.read()):
                    return True
    return False


# ------------------------------------------------------------------ tests

class LintianTest(unittest.TestCase):

    def test_no_errors(self):
        for target in (BUILD.changes, BUILD.dsc):
            proc = run(["lintian", "-EI", "--pedantic", target], timeout=600, check=False)
            sys.stderr.write("package: lintian -EI --pedantic %s (exit %d):\n%s\n"
                             % (os.path.basename(target), proc.returncode, proc.stdout))
            errors = [line for line in proc.stdout.splitlines() if line.startswith("E: ")]
            self.assertEqual(errors, [], "lintian errors on %s" % target)
            self.assertEqual(proc.returncode, 0, proc.stdout)


class InstalledPackageTest(PackageCase, PostfixTestCase):
    """The package installed: files, user, unit; the daemon run as the
    unit runs it, behind Postfix."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.install_package()
        except BaseException:
            cls.remove_package()
            cls._stop_services()
            cls.tmp.cleanup()
            raise
        st = os.stat(STATE_DIR)
        cls.state_dir_owner = (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                               stat.S_IMODE(st.st_mode))
        cls.unit = Unit(UNIT_FILE)
        port = milter_port(cls.unit)
        cls.extra_args = []
        if can_connect(("inet", port)):
            unit_port, port = port, free_port()
            cls.extra_args = ["-o", "milter.socket=inet:%d@127.0.0.1" % port]
            sys.stderr.write("package: port %d is taken; the daemon gets %s\n" % (unit_port, " ".join(cls.extra_args)))
        cls.postfix.set(smtpd_milters="inet:127.0.0.1:%d" % port)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.remove_package()
        finally:
            super().tearDownClass()

    def start_unit(self):
        process = UnitProcess(self.unit, self.tmp, self.extra_args)
        self.addCleanup(process.cleanup)
        self.unit_processes = getattr(self, "unit_processes", []) + [process]
        return process.start()

    def extra_diagnostics(self):
        notes = super().extra_diagnostics()
        for process in getattr(self, "unit_processes", []):
            received = process.notify.received if process.notify else []
            notes.append("--- %s (notify: %r):\n%s" % (" ".join(process.argv), received, tail(process.output())))
        if getattr(self, "syslog", None) is not None:
            notes.append("--- daemon syslog:\n%s" % tail("\n".join(self.syslog.lines)))
        return notes

    def test_files_where_they_belong(self):
        for path in ("/usr/sbin/portcullis", UNIT_FILE, "/usr/share/bash-completion/completions/portcullis",
                     "/usr/share/doc/portcullis/README.md", "/usr/share/doc/portcullis/copyright",
                     "/usr/share/doc/portcullis/docs/policy-language.md", "/usr/share/doc/portcullis/docs/daemon.md",
                     "/usr/share/doc/portcullis/examples/monitoring/grafana-dashboard.json",
                     "/usr/share/doc/portcullis/examples/monitoring/portcullis.rules.yml"):
            self.assertTrue(os.path.isfile(path), path)
        self.assertTrue(os.access("/usr/sbin/portcullis", os.X_OK))
        with open(os.path.join(SOURCE_DIR, "policies", "default.rules"), "rb") as shipped, \
                open(os.path.join(CONFIG_DIR, "policy.rules"), "rb") as installed:
            self.assertEqual(shipped.read(), installed.read(), "policy.rules is policies/default.rules")
        self.assertEqual(sorted(os.listdir(os.path.join(CONFIG_DIR, "lists"))),
                         sorted(os.listdir(os.path.join(SOURCE_DIR, "policies", "lists"))))
        if man_generator_in_tree():
            for page in MAN_PAGES:
                self.assertTrue(os.path.isfile(page), page)
                proc = run(["man", "--warnings", "-l", page], check=False, env=dict(os.environ, MANWIDTH="80"))
                self.assertEqual(proc.returncode, 0, proc.stdout)
        else:
            sys.stderr.write("package: the tree has no man page generator yet: man pages not checked\n")

    def test_etc_files_are_conffiles(self):
        listed = run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE]).stdout.split()
        conffiles = sorted(p for p in listed if p.startswith("/"))
        on_disk = sorted(os.path.join(d, f) for d, _, files in os.walk(CONFIG_DIR) for f in files)
        self.assertEqual(conffiles, on_disk)
        self.assertIn("/etc/portcullis/portcullis.conf", conffiles)
        self.assertIn("/etc/portcullis/policy.rules", conffiles)

    def test_system_user_owns_state(self):
        entry = pwd.getpwnam("portcullis")
        self.assertLess(entry.pw_uid, 1000, "a system user")
        self.assertEqual(grp.getgrgid(entry.pw_gid).gr_name, "portcullis")
        self.assertIn(entry.pw_shell, ("/usr/sbin/nologin", "/bin/false"))
        self.assertEqual(self.state_dir_owner, ("portcullis", "portcullis", 0o750), "after postinst")

    def test_completion_found_by_bash_completion(self):
        loader = "/usr/share/bash-completion/bash_completion"
        if not os.path.isfile(loader):
            self.skipTest("no bash-completion package")
        proc = run(["bash", "--norc", "--noprofile", "-c",
                    'source "$1"; __load_completion portcullis && complete -p portcullis', "bash", loader],
                   check=False)
        self.assertRegex(proc.stdout, r"(?m)^complete -F _portcullis portcullis$")

    def test_unit_is_hardened(self):
        unit = self.unit
        self.assertEqual(unit.get("Type"), "notify")
        self.assertEqual(account(unit), ("portcullis", "portcullis"))
        for key, value in (("NoNewPrivileges", "yes"), ("CapabilityBoundingSet", ""), ("ProtectSystem", "strict"),
                           ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("RuntimeDirectory", "portcullis"),
                           ("StateDirectory", "portcullis")):
            self.assertEqual(unit.get(key), value, key)
        self.assertIn("@system-service", unit.all("SystemCallFilter"))
        self.assertEqual(set(unit.get("RestrictAddressFamilies").split()), {"AF_UNIX", "AF_INET", "AF_INET6"})
        self.assertEqual(unit.command("ExecReload")[-1][-2:], ["-HUP", "$MAINPID"])

    def test_systemd_analyze(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("no systemd-analyze on this machine: the unit is not verified")
        man = "yes" if man_generator_in_tree() else "no"
        proc = run(["systemd-analyze", "verify", "--man=" + man, UNIT_FILE], check=False)
        self.assertEqual((proc.returncode, proc.stdout), (0, ""), "systemd-analyze verify --man=" + man)
        # systemd's scale: 0 to 10, "OK" up to 4.9, here 2.0 at most.
        proc = run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", UNIT_FILE], check=False)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        sys.stderr.write("package: %s\n" % proc.stdout.strip().splitlines()[-1])

    def test_check_passes_as_exec_start_pre(self):
        (argv,) = self.unit.command("ExecStartPre")
        self.assertEqual(argv[:2], ["/usr/sbin/portcullis", "check"])
        proc = run_as_unit(self.unit, argv)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertRegex(proc.stdout, r"ok: /etc/portcullis/policy\.rules: \d+ rules, \d+ lists, \d+ maps, \d+ files")

    def test_daemon_as_the_unit_runs_it_serves_postfix(self):
        self.syslog = SyslogListener()
        self.addCleanup(self.syslog.close)
        process = self.start_unit()
        self.assertEqual(process.argv[:4], ["/usr/sbin/portcullis", "run", "-c", "/etc/portcullis/portcullis.conf"])
        status = process_status(process.proc.pid)
        entry = pwd.getpwnam("portcullis")
        self.assertEqual(status["Uid"].split()[0], str(entry.pw_uid))
        self.assertEqual(status["Gid"].split()[0], str(entry.pw_gid))
        self.assertEqual((status["NoNewPrivs"], int(status["CapBnd"], 16), int(status["CapEff"], 16)), ("1", 0, 0))

        # A trusted client (127.0.0.1, lists/trusted-networks.txt): delivered.
        trusted = self.send("someone@foreign.example", sender="app@host.example")
        self.assertTrue(trusted.delivered, trusted)
        self.assertEqual([m.recipients for m in self.deliveries(trusted)], [["someone@foreign.example"]])

        # An external client relaying: refused by the shipped rule.
        with open(os.path.join(CONFIG_DIR, "policy.rules"), encoding="utf-8") as f:
            relay_line = next(n for n, l in enumerate(f, 1) if '"Relay access denied"' in l)
        refused = self.send_external("someone@foreign.example", quit_after="RCPT")
        self.assertReply(refused.reply_to("RCPT"), 554, "5.7.1 Relay access denied")

        # An authenticated client: past the sender-login check and the
        # rate limits (the memory store), to a foreign domain.  QUIT after
        # RCPT: the From header would start a DMARC lookup, and no test
        # uses the machine's resolver.
        login = "alice@customer.example"
        authenticated = self.send_external("bob@foreign.example", sender=login, xclient={"login": login},
                                           quit_after="RCPT")
        self.assertReply(authenticated.reply_to("RCPT"), 250, context=str(authenticated))

        if self.syslog.listening:
            self.syslog.wait_for(r"portcullis\[%d\]: .*rcpt: reject client=%s .*rule=policy\.rules:%d\b"
                                 % (process.proc.pid, re.escape(EXTERNAL_IP), relay_line))
            self.syslog.wait_for(r"rcpt: ratelimit pass client=%s .*bucket=" % re.escape(EXTERNAL_IP))

        process.reload()
        if self.syslog.listening:
            self.syslog.wait_for(r"reloaded policy /etc/portcullis/policy\.rules")
        again = self.send_external("someone@foreign.example", quit_after="RCPT")
        self.assertReply(again.reply_to("RCPT"), 554, "5.7.1 Relay access denied")

        self.assertEqual(process.stop(), 0, process.output())
        snapshot = os.path.join(STATE_DIR, "state.snapshot")
        self.assertTrue(os.path.isfile(snapshot), "the memory store saved its state at shutdown")
        self.assertEqual(pwd.getpwuid(os.stat(snapshot).st_uid).pw_name, "portcullis")


class RemoveAndPurgeTest(PackageCase, unittest.TestCase):
    """dpkg -r keeps what Debian policy keeps; dpkg -P nothing."""

    @classmethod
    def setUpClass(cls):
        cls.install_package()

    @classmethod
    def tearDownClass(cls):
        cls.remove_package()

    def test_remove_then_purge(self):
        # State where the daemon keeps it, written as the unit's user
        # (InstalledPackageTest has the daemon write it for real).
        written = run_as_unit(Unit(UNIT_FILE), ["sh", "-c", "echo state > %s/state.snapshot" % STATE_DIR])
        self.assertEqual(written.returncode, 0, written.stdout)

        dpkg("--remove", PACKAGE)
        left = sorted(file_tree() - self.tree_before)
        self.assertEqual([p for p in left if not KEPT_ON_REMOVE.match(p)], [], "left by dpkg -r")
        self.assertIn("/etc/portcullis/portcullis.conf", left)
        self.assertIn("/var/lib/portcullis/state.snapshot", left)
        for gone in ("/usr/sbin/portcullis", UNIT_FILE, "/usr/share/doc/portcullis",
                     "/usr/share/bash-completion/completions/portcullis"):
            self.assertFalse(os.path.lexists(gone), gone)

        purge()
        purged = file_tree()
        self.assertEqual(sorted(purged - self.tree_before), [], "left by dpkg -P")
        self.assertEqual(sorted(self.tree_before - purged), [], "removed by dpkg -P but there before")
        self.assertIsNotNone(pwd.getpwnam("portcullis"), "the system user stays")


class ConffileTest(PackageCase, unittest.TestCase):
    """Edited conffiles survive a reinstall and an upgrade."""

    EDIT = "\n# edited by the administrator (e2e)\n"

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()
        cls.install_package()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.remove_package()
        finally:
            cls.tmp.cleanup()

    def upgrade_package(self, version, changes):
        """BUILD.deb as VERSION with the files in CHANGES ({path: text
        appended}) changed: what a later release built from an edited
        tree would be."""
        root = self.tmp.sub("repack-" + version)
        shutil.rmtree(root)
        run(["dpkg-deb", "-R", BUILD.deb, root])
        for path, appended in changes.items():
            with open(root + path, "a", encoding="utf-8") as f:
                f.write(appended)
        control = os.path.join(root, "DEBIAN", "control")
        with open(control, encoding="utf-8") as f:
            text = re.sub(r"(?m)^Version: .*$", "Version: " + version, f.read())
        write_file(control, text)
        sums = []
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = [d for d in subdirs if d != "DEBIAN"]
            for name in files:
                path = os.path.join(directory, name)
                if not os.path.islink(path):
                    with open(path, "rb") as f:
                        sums.append("%s  %s\n" % (hashlib.md5(f.read()).hexdigest(), os.path.relpath(path, root)))
        write_file(os.path.join(root, "DEBIAN", "md5sums"), "".join(sorted(sums, key=lambda s: s[34:])))
        deb = os.path.join(self.tmp.path, "portcullis_%s.deb" % version)
        run(["dpkg-deb", "--root-owner-group", "-b", root, deb], timeout=120)
        return deb

    def read(self, path):
        with open(path, encoding="utf-8") as f:
            return f.read()

    def test_edits_survive_reinstall_and_upgrade(self):
        conf, rules = "/etc/portcullis/portcullis.conf", "/etc/portcullis/policy.rules"
        trusted = "/etc/portcullis/lists/trusted-networks.txt"
        for path in (conf, rules):
            with open(path, "a", encoding="utf-8") as f:
                f.write(self.EDIT)
        edited = {path: self.read(path) for path in (conf, rules)}
        original_trusted = self.read(trusted)

        # The same package again: dpkg keeps the edits and asks nothing.
        dpkg("-i", BUILD.deb)
        for path, text in edited.items():
            self.assertEqual(self.read(path), text, path)

        # A release that changes policy.rules (edited here) and the trusted
        # networks (not edited): the edit stays, the new policy.rules waits
        # beside it, the untouched list is updated.
        upstream = "\n# changed by the next release (e2e)\n"
        deb = self.upgrade_package(BUILD.version + "+e2e1", {rules: upstream, trusted: upstream})
        dpkg("--force-confdef", "--force-confold", "-i", deb)
        self.assertEqual(installed_version(), BUILD.version + "+e2e1")
        self.assertEqual(self.read(conf), edited[conf])
        self.assertEqual(self.read(rules), edited[rules])
        self.assertTrue(self.read(rules + ".dpkg-dist").endswith(upstream))
        self.assertEqual(self.read(trusted), original_trusted + upstream)

        check = run_as_unit(Unit(UNIT_FILE), ["/usr/sbin/portcullis", "check", "-c", conf])
        self.assertEqual(check.returncode, 0, check.stdout)

        purge()
        self.assertFalse(os.path.lexists(CONFIG_DIR), "purge removes the conffiles, .dpkg-dist too")


if __name__ == "__main__":
    unittest.main()
