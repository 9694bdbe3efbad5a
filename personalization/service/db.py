"""A local development PostgreSQL for the journal: one private cluster under the line's data
folder (``<data_dir>/postgres`` unless another folder is named), which several lines on this
machine share by putting the same ``journal.url`` in their ``line.yaml``.

Started by root, the server runs as the ``postgres`` user, who must be able to walk down to
the cluster, while the data folder stays 0700 (it holds the HSM token and the journal). The
cluster therefore stays inside the data folder, and :meth:`PGCluster.let_server_through`
gives ``postgres`` a POSIX ACL entry of search permission only (``--x``: it can neither list
nor read the folder) on each folder above the cluster that would stop it; nobody else gains
anything. Moving the cluster to a shared folder instead (``/var/lib/…``) would leave the
data folder's removal (``make clean``) half done, and a folder above the data folder one
cannot reach; ``--folder`` still chooses any folder. A ``chmod`` of such a folder takes the
passage back, so each start and stop grants it again when needed.

The first open of a fresh journal database must be as its owner (it runs the migrations);
:func:`start` does that once, so the lines can connect as their own role right away, and
:func:`migrate` does it for a factory's own server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from personalization.config import LineConfig
from personalization.journal import open_journal
from personalization.journal.pgcluster import (
    DATABASE,
    LINE,
    OWNER,
    ClusterError,
    PGCluster,
    Status,
)
from personalization.journal.postgres import redact

__all__ = ["ClusterError", "DBStatus", "Migrated", "Role", "Started", "cluster_folder", "migrate",
           "start", "status", "stop", "url"]

Role = Literal["line", "owner"]
_ROLES: dict[Role, str] = {"line": LINE, "owner": OWNER}


@dataclass(frozen=True, slots=True)
class DBStatus:
    """Where the cluster is, whether it runs, and the URLs to reach it (``None`` when there
    is no cluster). The URLs name the password file; they hold no password."""

    state: Status
    folder: Path
    socket: Path
    line_url: str | None
    owner_url: str | None

    def as_dict(self) -> dict[str, str | None]:
        """The fields as JSON-ready values."""
        return {"state": self.state, "folder": str(self.folder), "socket": str(self.socket),
                "line_url": self.line_url, "owner_url": self.owner_url}


@dataclass(frozen=True, slots=True)
class Started:
    """What :func:`start` found and did."""

    was: Status
    status: DBStatus
    granted: list[Path] = field(default_factory=list)  # folders given postgres passage


@dataclass(frozen=True, slots=True)
class Migrated:
    """A journal database brought up to date: where (no password) and its schema version."""

    where: str
    version: int


def migrate(url: str) -> Migrated:
    """Open the journal at ``url`` once, which applies the migrations it lacks (as the
    database's owner: the lines' role may not), and close it."""
    with open_journal(url) as journal:
        return Migrated(redact(url), journal.schema_version)


def cluster_folder(config: LineConfig | None, folder: Path | None) -> Path:
    """The cluster's folder: ``folder`` when given, else ``<data_dir>/postgres``."""
    if folder is not None:
        return folder.absolute()
    if config is None:
        raise ClusterError("name the cluster's folder (--folder) or a line configuration")
    return config.data_dir / "postgres"


def _cluster(folder: Path) -> PGCluster:
    try:
        return PGCluster(folder.resolve())
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError before 3.13)
        raise ClusterError(f"PostgreSQL cluster {folder}: {exc}") from exc


def _describe(cluster: PGCluster, state: Status) -> DBStatus:
    here = state != "absent"
    return DBStatus(state, cluster.folder, cluster.socket_dir,
                    cluster.url(DATABASE, LINE) if here else None,
                    cluster.url(DATABASE, OWNER) if here else None)


def _prepare(cluster: PGCluster, data_dir: Path | None) -> list[Path]:
    """The folders up to the cluster's exist (the data folder owner-only, as the line makes
    it), and, as root, the server's user may pass them."""
    try:
        if data_dir is not None:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        cluster.folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if cluster.folder.exists() and not cluster.folder.is_dir():
            raise ClusterError(f"PostgreSQL cluster {cluster.folder}: not a folder")
    except OSError as exc:
        why = "it exists and is not a folder" if isinstance(exc, FileExistsError) \
            else exc.strerror or str(exc)
        raise ClusterError(f"PostgreSQL cluster {cluster.folder}: cannot create "
                           f"{exc.filename or 'its folder'}: {why}") from exc
    return cluster.let_server_through()


def start(folder: Path, *, data_dir: Path | None = None) -> Started:
    """Create the cluster (the first time) and start it; nothing to start when it runs. Then
    migrate the journal's database as its owner, so the lines may open it as theirs.
    ``data_dir``: the line's data folder holding ``folder``, created owner-only if missing."""
    cluster = _cluster(folder)
    granted = _prepare(cluster, data_dir)
    was = cluster.status()
    try:
        cluster.start()
    except OSError as exc:  # pgcluster writes its own files (pgpass) as the caller
        raise ClusterError(f"PostgreSQL cluster {cluster.folder}: cannot write "
                           f"{exc.filename or 'its files'}: {exc.strerror or exc}") from exc
    migrate(cluster.url(DATABASE, OWNER))
    return Started(was, _describe(cluster, "running"), granted)


def stop(folder: Path, *, immediate: bool = False) -> Status:
    """Stop the server (``immediate``: no shutdown checkpoint, as a crash would); what it
    was before (``running``, ``stopped`` or ``absent``)."""
    cluster = _cluster(folder)
    if not (cluster.data / "PG_VERSION").exists():
        return "absent"
    cluster.let_server_through()
    was = cluster.status()
    cluster.stop("immediate" if immediate else "fast")
    return was


def status(folder: Path) -> DBStatus:
    """Whether the cluster in ``folder`` runs, and how lines and the owner reach it."""
    cluster = _cluster(folder)
    return _describe(cluster, cluster.status())


def url(folder: Path, role: Role = "line") -> str:
    """The ``postgresql://`` URL of the journal's database as ``role`` (no password in it)."""
    cluster = _cluster(folder)
    if not (cluster.data / "PG_VERSION").exists():
        raise ClusterError(f"PostgreSQL cluster {cluster.folder}: there is none yet; "
                           "`cardline db start` creates it")
    return cluster.url(DATABASE, _ROLES[role])
