"""A private PostgreSQL cluster under one folder, for tests and for a local development fleet.

Layout of ``folder``: ``data/`` (the cluster, owned by the server's user), ``socket/`` (the
Unix socket, the only way in: ``listen_addresses`` is empty, so no TCP port can clash; the
port number only names the socket file), ``server.log`` and ``pgpass`` (the roles' passwords,
owner-only, named by the URLs :meth:`PGCluster.url` gives, so no password is in a URL).

Authentication: ``scram-sha-256`` over the Unix socket and nothing else (``pg_hba.conf`` has
one ``local`` line): each role has a random password written to ``pgpass`` only; the server
never sees a password in clear (the verifier is computed client-side). Roles: a superuser
(:data:`SUPERUSER`) for administration, :data:`OWNER`, who owns the journal's database and runs
its migrations, and :data:`LINE`, the role the lines connect as, which the migrations grant
what a line needs and no more (events: SELECT and INSERT only).

``initdb`` and the server refuse to run as root: as root, they run as the Debian package's
``postgres`` user (``runuser``), who owns the folder; the folder's parents must let that user
through (``/tmp/x`` does, a 0700 home or data folder does not):
:meth:`PGCluster.let_server_through` grants that passage and nothing more, a POSIX ACL entry
``user:postgres:--x`` (search, not list or read) on each parent that blocks it, so a 0700
folder stays closed to everyone else. Otherwise they run as the caller.

Two data centres, as a factory runs them: Hà Nội holds the primary, made with
``PGCluster(folder, replicate_to="tphcm")`` (``wal_level=replica``, WAL senders, the
:data:`REPLICATOR` role over the socket, ``synchronous_standby_names = tphcm``); TP.HCM holds
its synchronous standby, cloned by :meth:`PGCluster.standby_of` (``pg_basebackup -R``, its
``primary_conninfo`` naming it ``tphcm``). With ``synchronous_commit = on`` a commit returns
to a line only once TP.HCM has flushed it to disk, and a promotion replays all WAL the standby
has, so nothing the journal acknowledged is lost when Hà Nội dies; a commit in flight then is
in doubt (the line got an error), as after any crash. The price: each commit waits one round
trip to TP.HCM, and while TP.HCM is away Hà Nội's commits wait, ``statement_timeout``
notwithstanding (PostgreSQL does not time out that wait): the lines stall rather than write
what one site alone holds. Letting Hà Nội run alone (``synchronous_standby_names = ''``) and
promoting TP.HCM (:meth:`PGCluster.promote`, after Hà Nội is fenced) are decisions for an
operator or a cluster manager, never for cardline: the lines only reconnect, through one
:func:`multi_host_url` listing both sites with ``target_session_attrs=read-write``, which
lands on whichever server takes writes. The old primary must not come back as one: it is
rebuilt as the new primary's standby (``pg_rewind`` or a fresh clone).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from personalization.journal.port import JournalError

SERVER_USER = "postgres"  # who runs the server when we are root (Debian's package creates it)
SUPERUSER = "cardline_admin"
OWNER = "cardline_owner"
LINE = "cardline_line"
REPLICATOR = "cardline_replicator"  # a standby's role on its primary (REPLICATION, nothing else)
DATABASE = "cardline"
ROLES = (SUPERUSER, OWNER, LINE)
CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 60.0
# A commit returns once the synchronous standby has flushed its WAL: promotion replays all
# of it, so nothing acknowledged is lost; remote_apply would also wait for the replay, which
# only matters to readers of the standby, and cardline reads from the primary only.
SYNC_COMMIT = "on"
_POLL_S = 0.1
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # roles, databases, standby names
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with its terminating NUL
Status = Literal["running", "stopped", "absent"]


class ClusterError(JournalError):
    """The private cluster could not be created, started, stopped or set up."""


def server_bin() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``pg_basebackup``: where the ``initdb`` on
    PATH really is (a link there leads to the rest), else Debian's newest
    ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    numbered = [p for p in versions if p.parent.name.isdigit()]
    if not numbered:
        raise ClusterError("no PostgreSQL server programs (initdb, pg_ctl) on PATH or under "
                           "/usr/lib/postgresql: install postgresql-15 (make setup)")
    return max(numbered, key=lambda p: int(p.parent.name))


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "(no output)"


class PGCluster:
    """One private cluster under ``folder``; a context manager that starts and stops it.

    ``settings`` are extra server settings (``-c name=value``), e.g. ``fsync=off`` for tests
    that never survive a power cut. ``replicate_to`` makes it a primary that replicates to
    the synchronous standby of that name (see :meth:`standby_of`).
    """

    def __init__(self, folder: Path, *, port: int = 5432,
                 settings: Mapping[str, str] | None = None,
                 timeout_s: float = COMMAND_TIMEOUT_S, replicate_to: str | None = None) -> None:
        self.folder = folder
        self.port = port
        self.settings = dict(settings or {})
        self.timeout_s = timeout_s
        self.replicate_to = replicate_to

    # -- where things are -------------------------------------------------------------------

    @property
    def data(self) -> Path:
        """The cluster's data directory (also holds ``pg_wal``)."""
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        """The folder holding the server's Unix socket."""
        return self.folder / "socket"

    @property
    def passfile(self) -> Path:
        """The roles' passwords, in libpq's ``.pgpass`` format, owner-only."""
        return self.folder / "pgpass"

    @property
    def log(self) -> Path:
        """The server's log."""
        return self.folder / "server.log"

    def url(self, database: str = DATABASE, role: str = LINE) -> str:
        """A ``postgresql://`` URL to ``database`` as ``role`` over the socket, its password
        read from :attr:`passfile` (none in the URL)."""
        query = (f"host={quote(str(self.socket_dir), safe='')}&port={self.port}"
                 f"&passfile={quote(str(self.passfile), safe='')}")
        return f"postgresql://{quote(role, safe='')}@/{quote(database, safe='')}?{query}"

    # -- running the server's programs ------------------------------------------------------

    def _as_server(self) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []

    def _run(self, what: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        command = [*self._as_server(), *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True,  # noqa: S603 - our own argv
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: {what} did not finish within "
                               f"{self.timeout_s:g} s") from exc
        except OSError as exc:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: cannot run {what}: "
                               f"{exc}") from exc
        return done

    def _check(self, what: str, args: Sequence[str]) -> None:
        done = self._run(what, args)
        if done.returncode != 0:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: {what} failed (exit "
                               f"{done.returncode}): {_tail(done.stderr or done.stdout)}")

    def _owned(self, path: Path) -> None:
        """``path`` owner-only, and the server user's when we are root."""
        path.chmod(0o700 if path.is_dir() else 0o600)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _server_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError as exc:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: running as root, and there "
                               f"is no {SERVER_USER!r} user to run the server as (install "
                               "postgresql-15)") from exc

    def _parents(self) -> list[Path]:
        """The folders above ``folder`` that exist, from ``/`` down."""
        return [p for p in reversed(self.folder.resolve().parents) if p.exists()]

    def _first_blocked(self) -> Path | None:
        """As root: the first folder above ``folder`` (from ``/`` down) the server user may not
        pass, asking the kernel as that user, so modes, groups and ACLs all count."""
        walk = 'for d do test -x "$d" || { printf %s "$d"; exit 0; }; done'
        done = self._run("a passage check", ["sh", "-c", walk, "sh",
                                             *map(str, self._parents())])
        if done.returncode != 0:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: cannot check, as "
                               f"{SERVER_USER!r}, the folders above it: "
                               f"{_tail(done.stderr or done.stdout)}")
        return Path(done.stdout) if done.stdout else None

    def _reachable(self) -> None:
        """As root: the server user must be able to walk down to ``folder``."""
        if os.geteuid() != 0:
            return
        self._server_user()
        blocked = self._first_blocked()
        if blocked is not None:
            mode = blocked.stat().st_mode & 0o777
            raise ClusterError(f"PostgreSQL cluster {self.folder}: the server runs as "
                               f"{SERVER_USER!r}, who cannot pass {blocked} (mode {mode:o}); "
                               f"grant it passage (`setfacl -m u:{SERVER_USER}:x {blocked}`, "
                               "as `cardline db start` does) or choose a folder it can reach, "
                               "e.g. under /tmp or /var/tmp")

    def let_server_through(self) -> list[Path]:
        """As root, give the server user passage through every folder above ``folder`` that
        blocks it: a POSIX ACL entry ``user:postgres:--x`` (search only: it can neither list
        nor read those folders, and everyone else is kept out as before). Returns the folders
        changed (none when not root or when nothing blocks). A ``chmod`` of such a folder
        resets the ACL's mask and so takes the passage back; calling this again restores it."""
        if os.geteuid() != 0:
            return []
        self._server_user()
        setfacl = shutil.which("setfacl")
        granted: list[Path] = []
        while (blocked := self._first_blocked()) is not None:
            if blocked in granted or setfacl is None:
                why = ("setfacl is missing: install the acl package (make setup)"
                       if setfacl is None else "its file system ignores the ACL")
                raise ClusterError(f"PostgreSQL cluster {self.folder}: the server runs as "
                                   f"{SERVER_USER!r}, who cannot pass {blocked}, and cardline "
                                   f"cannot grant it passage: {why}; choose a folder it can "
                                   "reach, e.g. under /var/tmp")
            self._grant_passage(setfacl, blocked)
            granted.append(blocked)
        return granted

    def _grant_passage(self, setfacl: str, folder: Path) -> None:
        """``setfacl -m u:postgres:x folder`` (which also widens the ACL's mask to match)."""
        try:
            done = subprocess.run([setfacl, "-m", f"u:{SERVER_USER}:x", str(folder)],  # noqa: S603 - our own argv
                                  capture_output=True, text=True, check=False,
                                  timeout=self.timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: cannot run setfacl on "
                               f"{folder}: {exc}") from exc
        if done.returncode != 0:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: cannot grant "
                               f"{SERVER_USER!r} passage through {folder}: "
                               f"{_tail(done.stderr or done.stdout)}")

    # -- life cycle -------------------------------------------------------------------------

    def init(self) -> None:
        """Create the cluster (once): ``initdb``, Unix-socket-only ``scram-sha-256`` access,
        and a random password per role in :attr:`passfile`."""
        if (self.data / "PG_VERSION").exists():
            return
        self._make_folder()
        passwords = {role: secrets.token_urlsafe(24) for role in ROLES}
        self._write_passfile(passwords)
        pwfile = self.folder / "initdb.pw"
        pwfile.write_text(passwords[SUPERUSER] + "\n", encoding="utf-8")
        self._owned(pwfile)
        try:
            self._check("initdb", [str(server_bin() / "initdb"), "-D", str(self.data),
                                   "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                                   "--encoding=UTF8", "--locale=C", "--no-instructions"])
        finally:
            pwfile.unlink(missing_ok=True)
        hba = self.data / "pg_hba.conf"
        hba.write_text("# cardline: the Unix socket only, a password for every role\n"
                       "local all all scram-sha-256\n", encoding="utf-8")
        self._owned(hba)

    def _make_folder(self) -> None:
        """``folder``, owner-only (the server user's when root), reachable by the server."""
        if len(str(self.socket_dir / f".s.PGSQL.{self.port}")) > _SOCKET_PATH_MAX:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: the socket path would be "
                               f"longer than {_SOCKET_PATH_MAX} bytes; choose a shorter folder")
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._reachable()
        self._owned(self.folder)

    def _write_passfile(self, passwords: Mapping[str, str], ports: Sequence[int] = (),
                        path: Path | None = None) -> None:
        """``passwords`` for each of ``ports`` (this cluster's by default) in ``path``
        (:attr:`passfile` by default), owner-only."""
        fd = os.open(path or self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for port in ports or (self.port,):
                for role, password in passwords.items():
                    out.write(f"*:{port}:*:{role}:{password}\n")

    def _passwords(self, port: int | None = None) -> dict[str, str]:
        """The roles' passwords in :attr:`passfile` for ``port`` (this cluster's by default)."""
        found: dict[str, str] = {}
        for line in self.passfile.read_text(encoding="utf-8").splitlines():
            _host, at, _database, user, password = line.split(":", 4)
            if at == str(port or self.port):
                found.setdefault(user, password)
        return found

    def _password(self, role: str, port: int | None = None) -> str:
        password = self._passwords(port).get(role)
        if password is None:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: no password for {role!r} "
                               f"(port {port or self.port}) in {self.passfile}")
        return password

    def start(self) -> None:
        """Create the cluster if needed, start the server and wait until it accepts
        connections (bounded by ``timeout_s``), then make sure the roles and the journal's
        database exist."""
        self.init()
        if self.replicate_to is not None:
            self._allow_replication()
        if self.status() != "running":
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            self._owned(self.socket_dir)
            settings = {**self._replication_settings(), **self.settings}
            options = ["-k", str(self.socket_dir), "-c", "listen_addresses=", "-p",
                       str(self.port), *[f"-c{k}={v}" for k, v in settings.items()]]
            self._check("pg_ctl start", [
                str(server_bin() / "pg_ctl"), "start", "-D", str(self.data), "-l",
                str(self.log), "-w", "-t", str(int(self.timeout_s)), "-o",
                shlex.join(options)])
        self._bootstrap()

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Stop the server (``immediate``: no shutdown checkpoint, as a crash would); nothing
        when it is not running."""
        if self.status() != "running":
            return
        self._check(f"pg_ctl stop -m {mode}", [
            str(server_bin() / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w",
            "-t", str(int(self.timeout_s))])

    def status(self) -> Status:
        """``running``, ``stopped`` (a cluster, no server) or ``absent`` (no cluster)."""
        if not (self.data / "PG_VERSION").exists():
            return "absent"
        done = self._run("pg_ctl status", [str(server_bin() / "pg_ctl"), "status", "-D",
                                           str(self.data)])
        if done.returncode == 4:  # pg_ctl: "no accessible data directory"
            self._reachable()
            raise ClusterError(f"PostgreSQL cluster {self.folder}: pg_ctl status cannot read "
                               f"{self.data}: {_tail(done.stderr or done.stdout)}")
        return "running" if done.returncode == 0 else "stopped"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- roles and databases ----------------------------------------------------------------

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection (autocommit), for setup and tests. Its commits wait for
        the local disk only, never for a standby: a replicating primary's roles and database
        are made before it has one."""
        try:
            return psycopg.connect(self.url(database, SUPERUSER), autocommit=True,
                                   connect_timeout=CONNECT_TIMEOUT_S,
                                   options="-c synchronous_commit=local")
        except psycopg.Error as exc:
            raise ClusterError(f"PostgreSQL cluster {self.folder}: cannot connect as "
                               f"{SUPERUSER}: {_tail(str(exc), 2)}") from exc

    def _bootstrap(self) -> None:
        replicator = [REPLICATOR] if self.replicate_to is not None else []
        with self.admin() as db:
            for role in (OWNER, LINE, *replicator):
                if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    continue
                verifier = db.pgconn.encrypt_password(self._password(role).encode(),
                                                      role.encode(), b"scram-sha-256")
                db.execute(sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                    sql.Identifier(role), sql.SQL("REPLICATION" if role == REPLICATOR else ""),
                    sql.Literal(verifier.decode("ascii"))))
        self.create_database(DATABASE)

    def create_database(self, name: str, template: str | None = None) -> None:
        """``name`` owned by :data:`OWNER`, which only it and :data:`LINE` may connect to;
        copied from ``template`` when given (nobody may be connected to that one). Nothing
        when it exists already."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ClusterError(f"PostgreSQL cluster {self.folder}: {name!r} is not a plain "
                               "database name (lower case, digits, _)")
        with self.admin() as db:
            if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            create = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name),
                                                                   sql.Identifier(OWNER))
            if template is not None:
                create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            db.execute(create)
            db.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(name)))
            db.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(name), sql.Identifier(LINE)))

    def drop_database(self, name: str) -> None:
        """Drop ``name`` (its connections are ended first); nothing when it is absent."""
        with self.admin() as db:
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    # -- streaming replication: a primary and its synchronous standby ------------------------

    def _replication_settings(self) -> dict[str, str]:
        """A replicating primary's settings, given on its command line, so that a standby
        cloned from it does not inherit them: once promoted, it waits for no standby."""
        if self.replicate_to is None:
            return {}
        return {"wal_level": "replica", "max_wal_senders": "4",
                "synchronous_standby_names": self.replicate_to,
                "synchronous_commit": SYNC_COMMIT}

    def _allow_replication(self) -> None:
        """:data:`REPLICATOR`'s password in :attr:`passfile` and its ``replication`` line in
        ``pg_hba.conf`` (over the socket, scram), once; the server reads them as it starts."""
        name = self.replicate_to or ""
        if not _NAME.fullmatch(name):
            raise ClusterError(f"PostgreSQL cluster {self.folder}: {name!r} is not a plain "
                               "standby name (lower case, digits, _)")
        passwords = self._passwords()
        if REPLICATOR not in passwords:
            self._write_passfile({**passwords, REPLICATOR: secrets.token_urlsafe(24)},
                                 self._ports())
        hba = self.data / "pg_hba.conf"
        entry = f"local replication {REPLICATOR} scram-sha-256\n"
        if entry not in hba.read_text(encoding="utf-8"):
            with hba.open("a", encoding="utf-8") as out:
                out.write(entry)

    def _ports(self) -> list[int]:
        """Every port :attr:`passfile` has passwords for, this cluster's first."""
        ports = {int(line.split(":", 2)[1])
                 for line in self.passfile.read_text(encoding="utf-8").splitlines()}
        return [self.port, *sorted(ports - {self.port})]

    @classmethod
    def standby_of(cls, primary: PGCluster, folder: Path, *, port: int | None = None,
                   settings: Mapping[str, str] | None = None) -> PGCluster:
        """The synchronous standby of a running ``primary`` (made with ``replicate_to``) in
        ``folder``: cloned with ``pg_basebackup -R`` over the primary's socket (once), its
        ``primary_conninfo`` naming it ``primary.replicate_to``, started, and returned once
        the primary reports it ``streaming`` and ``sync`` (bounded by ``timeout_s``).

        Same port as the primary by default (each socket is in its own folder). Both
        :attr:`passfile` files then hold the roles' passwords for both ports (one catalog, so
        the same passwords), so either serves a :func:`multi_host_url`."""
        name = primary.replicate_to
        if name is None:
            raise ClusterError(f"PostgreSQL cluster {primary.folder} is not a primary that "
                               "replicates (PGCluster(..., replicate_to=NAME))")
        standby = cls(folder, port=port or primary.port, settings=settings,
                      timeout_s=primary.timeout_s)
        if not (standby.data / "PG_VERSION").exists():
            standby._clone(primary, name)
        standby.start()
        try:
            primary.wait_for_standby(name)
        except ClusterError as exc:
            log = standby.log.read_text(encoding="utf-8") if standby.log.exists() else ""
            raise ClusterError(f"{exc}; the standby's log {standby.log}: {_tail(log)}") from exc
        return standby

    def _clone(self, primary: PGCluster, name: str) -> None:
        """``pg_basebackup -R`` of ``primary`` into :attr:`data`, as the server user."""
        self._make_folder()
        passwords = primary._passwords()
        ports = sorted({primary.port, self.port})
        self._write_passfile(passwords, ports)
        primary._write_passfile({**primary._passwords(self.port), **passwords}, ports)
        # the walreceiver runs as the server user: a passfile of its own, with one password
        replication = self.folder / "replication.pgpass"
        self._write_passfile({REPLICATOR: primary._password(REPLICATOR)}, [primary.port],
                             replication)
        self._owned(replication)
        conninfo = make_conninfo(host=str(primary.socket_dir), port=str(primary.port),
                                 user=REPLICATOR, passfile=str(replication),
                                 application_name=name, connect_timeout=CONNECT_TIMEOUT_S)
        self._check("pg_basebackup", [str(server_bin() / "pg_basebackup"), "-D",
                                      str(self.data), "-d", conninfo, "-R", "-X", "stream",
                                      "-c", "fast", "-w"])

    def wait_for_standby(self, name: str) -> None:
        """Return once ``pg_stat_replication`` shows standby ``name`` ``streaming`` and
        ``sync``; :class:`ClusterError` after ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        with self.admin() as db:
            while True:
                row = db.execute("SELECT state, sync_state FROM pg_stat_replication WHERE "
                                 "application_name = %s", (name,)).fetchone()
                if row == ("streaming", "sync"):
                    return
                if time.monotonic() > deadline:
                    raise ClusterError(f"PostgreSQL cluster {self.folder}: standby {name!r} "
                                       f"is not a streaming synchronous standby after "
                                       f"{self.timeout_s:g} s (state, sync_state: "
                                       f"{row or 'not connected'})")
                time.sleep(_POLL_S)

    def in_recovery(self) -> bool:
        """True while the server is a standby (``pg_is_in_recovery()``)."""
        with self.admin() as db:
            row = db.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def promote(self) -> None:
        """Make this standby a primary (``pg_ctl promote``: it first replays all the WAL it
        has) and return once it takes writes, bounded by ``timeout_s``; nothing when it is
        one already."""
        if not self.in_recovery():
            return
        self._check("pg_ctl promote", [str(server_bin() / "pg_ctl"), "promote", "-D",
                                       str(self.data), "-w", "-t", str(int(self.timeout_s))])
        deadline = time.monotonic() + self.timeout_s
        while self.in_recovery():
            if time.monotonic() > deadline:
                raise ClusterError(f"PostgreSQL cluster {self.folder}: still in recovery "
                                   f"{self.timeout_s:g} s after pg_ctl promote")
            time.sleep(_POLL_S)


def multi_host_url(clusters: Sequence[PGCluster], database: str = DATABASE, role: str = LINE,
                   *, connect_timeout_s: int | None = None) -> str:
    """A ``postgresql://`` URL that tries each of ``clusters`` in turn and keeps the first
    that takes writes (``target_session_attrs=read-write``): after a failover, a new
    connection lands on the promoted standby. Passwords from the first cluster's
    :attr:`PGCluster.passfile`, which must hold ``role``'s for every port.

    libpq: ``host`` is a comma-separated list, an item starting with ``/`` a socket folder
    (so a folder with a comma cannot be one); ``port`` one per host; ``connect_timeout``
    applies to each host in turn, so an open tries for at most hosts × that many seconds."""
    if not clusters:
        raise ClusterError("a multi-host URL needs at least one cluster")
    for cluster in clusters:
        if "," in str(cluster.socket_dir):
            raise ClusterError(f"PostgreSQL cluster {cluster.folder}: libpq splits host lists "
                               "at commas, so this socket folder cannot be one of several "
                               "hosts; choose a folder without a comma")
        clusters[0]._password(role, cluster.port)
    hosts = ",".join(quote(str(c.socket_dir), safe="") for c in clusters)
    ports = ",".join(str(c.port) for c in clusters)
    timeout = "" if connect_timeout_s is None else f"&connect_timeout={connect_timeout_s}"
    return (f"postgresql://{quote(role, safe='')}@/{quote(database, safe='')}?host={hosts}"
            f"&port={ports}&target_session_attrs=read-write{timeout}"
            f"&passfile={quote(str(clusters[0].passfile), safe='')}")
