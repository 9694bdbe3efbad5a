"""``line.yaml``: one file per line, parsed once into frozen models that reject unknown keys."""

from __future__ import annotations

import getpass
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hsm.softhsm import embedded_pin_file, read_embedded_pin
from personalization.errors import ConfigError

DEFAULT_CONFIG = Path("line.yaml")


# Hard upper bounds of the DS policy (ICAO's PKD example policy: a new DS every 3 months or
# 150 000 documents); line.yaml may set lower values, nothing may set higher ones.
DS_USAGE_DAYS_BOUND = 366
DS_MAX_DOCUMENTS_BOUND = 500_000
ROLES = ("operator", "qa", "officer", "auditor", "admin")
Role = Literal["operator", "qa", "officer", "auditor", "admin"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HSMConfig(_Frozen):
    """Where the signing keys live and how the signer may use them."""

    module: str = Field(description="path of the PKCS#11 module (.so)")
    token: str = Field(min_length=1, description="token label")
    pin_source: Literal["env", "prompt", "embedded"] = "env"
    pin_env: str = "CARDLINE_HSM_PIN"
    softhsm_conf: Path | None = None
    csca_label: str = "CSCA"
    ds_label_prefix: str = "DS"
    algorithm: Literal["ecdsa-p256", "rsa-pss-2048", "rsa-pss-3072"] = "ecdsa-p256"
    # ICAO 9303-12 §4.1.6 wants explicit EC domain parameters in CSCA/DS certificates;
    # "named" is for relying parties whose verifiers refuse them (OpenSSL 3 does).
    ec_parameters: Literal["explicit", "named"] = "explicit"
    # the DS policy: a ceremony may lower these, never exceed them; the bounds are hard
    ds_max_documents: int = Field(100_000, gt=0, le=DS_MAX_DOCUMENTS_BOUND)
    ds_usage_days: int = Field(90, gt=0, le=DS_USAGE_DAYS_BOUND)
    signer_sessions: int = Field(2, ge=1, le=64)


class PrinterConfig(_Frozen):
    """A card printer: ``port`` is a device path, a ``socket://`` URL, or ``auto`` (emulator)."""

    port: str = "auto"
    model: str = "evolis-primacy"


class EncoderConfig(_Frozen):
    """The PC/SC reader of a station's encoding module."""

    reader: str = Field(min_length=1)


class StationConfig(_Frozen):
    """One printer with its encoding station."""

    name: str = Field(min_length=1)
    printer: PrinterConfig = PrinterConfig()
    encoder: EncoderConfig


class JournalConfig(_Frozen):
    """Where the journal lives (``sqlite:///path`` for one machine, ``postgresql://…`` for
    lines that share it) and how long personal data stays in it."""

    url: str = "sqlite:///.cardline/journal.db"
    retention_days: int = Field(
        0, ge=0, le=3650,
        description="days a closed batch keeps its applications' personal data (0: purged "
                    "when the batch closes)")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("use sqlite:///PATH (one machine) or postgresql://… (lines "
                             "sharing the journal; see `cardline db`)")
        if re.match(r"postgres(ql)?://[^/@]*:[^/@]*@", value):
            raise ValueError("no password in the URL (line.yaml is not a secret): use "
                             "passfile=… or PGPASSFILE, as `cardline db url` prints")
        return value


class ControllerConfig(_Frozen):
    """How the line controller treats failed cards and station alarms."""

    max_attempts: int = Field(3, ge=1, le=10, description="cards per application at most")
    alarm_poll_s: float = Field(0.5, gt=0, le=60,
                                description="how often an alarmed station looks again")
    qa_deadline_s: float = Field(10.0, gt=0, le=120,
                                 description="the longest QA may take over one card; a chip "
                                 "that keeps it busy longer is rejected ('deadline')")
    stop_grace_s: float = Field(60.0, gt=0, le=600,
                                description="after a stop, how long the stations may take to "
                                "finish the cards in hand; then the run ends without them (their "
                                "cards stay in doubt and are settled when the batch resumes)")
    lease_s: float = Field(10.0, ge=1, le=600,
                           description="when several lines share a batch: a line that has not "
                           "heartbeat for this long is taken for dead, and the applications it "
                           "claimed but never started go to the other lines")


class PeopleConfig(_Frozen):
    """Who may sign in and for how long: sessions end with the shift they began in."""

    shifts: list[str] = Field(default_factory=lambda: ["06:00", "14:00", "22:00"],
                              min_length=1, description="when each shift starts (HH:MM, local)")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="the factory's time zone (IANA)")
    lockout_failures: int = Field(5, ge=1, le=20,
                                  description="wrong passphrases in a row before a lockout")
    lockout_minutes: int = Field(15, ge=1, le=1440, description="how long a lockout lasts")

    @field_validator("shifts")
    @classmethod
    def _times(cls, value: list[str]) -> list[str]:
        for text in value:
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
                raise ValueError(f"shift start {text!r} is not HH:MM")
        return sorted(set(value))


class KeysConfig(_Frozen):
    """Key ceremonies: the officers' quorum and the offline CSCA's own token."""

    quorum: int = Field(2, ge=2, le=16, description="officers needed for a ceremony (k of n)")
    csca_token: str = Field("cardline-csca", min_length=1,
                            description="the CSCA's own token (its PIN is split among officers)")
    audit_label: str = Field("AUDIT", min_length=1,
                             description="the key on the line token that signs checkpoints")


# Hard upper bounds of the EAC certificate policy (days); line.yaml may set lower limits.
# TR-03110 leaves validity to the national policy; common practice is a CVCA of about
# three years, a DV of about three months and an inspection system of about one month.
CVCA_DAYS_BOUND = 3 * 366 + 365  # four years at most
DV_DAYS_BOUND = 366
IS_DAYS_BOUND = 93
_MNEMONIC = r"^[A-Z0-9]{1,9}$"
Right = Literal["dg3", "dg4"]  # TR-03110-3 A.6.1: holder mnemonic of a CAR/CHR


class EACConfig(_Frozen):
    """The EAC PKI's policy: the curve of its keys, the country code and holder mnemonics of
    the CV certificates' CAR/CHR, and how long each kind of certificate may be valid."""

    curve: Literal["brainpoolP256r1", "P-256"] = Field(
        "brainpoolP256r1", description="curve of the CVCA, DV and IS keys (id-TA-ECDSA-SHA-256)")
    country: str = Field("VN", pattern=r"^[A-Z]{2}$",
                         description="ISO 3166-1 alpha-2 country code of every CAR/CHR")
    cvca_mnemonic: str = Field("CVCACCCD", pattern=_MNEMONIC,
                               description="holder mnemonic of the CVCA")
    dv_mnemonic: str = Field("DVCCCD", pattern=_MNEMONIC,
                             description="holder mnemonic of the domestic DV")
    qa_mnemonic: str = Field("ISQADESK", pattern=_MNEMONIC,
                             description="holder mnemonic of the QA desk's inspection system")
    partner_mnemonic: str = Field("ISPARTNER", pattern=_MNEMONIC,
                                  description="default holder mnemonic of an outside "
                                  "inspection system certified by `keys issue-is`")
    cvca_days: int = Field(1095, ge=1, le=CVCA_DAYS_BOUND,
                           description="validity of a CVCA certificate (days)")
    dv_days: int = Field(90, ge=1, le=DV_DAYS_BOUND,
                         description="validity of a DV certificate (days)")
    is_days: int = Field(30, ge=1, le=IS_DAYS_BOUND,
                         description="the longest validity of an IS certificate (days)")
    qa_rights: list[Right] = Field(
        default_factory=lambda: list[Right](["dg3"]), min_length=1,
        description="what the QA desk's inspection system may read")

    @field_validator("qa_rights")
    @classmethod
    def _once_each(cls, value: list[Right]) -> list[Right]:
        return sorted(set(value))


class RegistryConfig(_Frozen):
    """The population registry's side: whose signature on an application batch the factory
    trusts, and how large a batch file may be."""

    trust: list[Path] = Field(
        default_factory=list,
        description="PEM files of the certificates (or CAs) that may sign application batches")
    max_file_mb: int = Field(256, ge=1, le=4096,
                             description="a signed batch file is refused above this size")


class SimulationConfig(_Frozen):
    """Settings of the simulated line (virtual encoders and emulated printers)."""

    timing: Literal["fast", "realistic"] = "fast"
    blank_cards_per_feeder: int = Field(200, ge=1)
    base_port: int = Field(31000, ge=1024, le=65000)


class LineConfig(_Frozen):
    """The whole of ``line.yaml``."""

    line: str = Field(min_length=1)
    data_dir: Path = Path(".cardline")
    profile: str = "cccd"
    hsm: HSMConfig
    journal: JournalConfig = JournalConfig()
    controller: ControllerConfig = ControllerConfig()
    people: PeopleConfig = PeopleConfig()
    keys: KeysConfig = KeysConfig()
    eac: EACConfig = EACConfig()
    registry: RegistryConfig = RegistryConfig()
    stations: list[StationConfig] = Field(default_factory=list)
    simulation: SimulationConfig = SimulationConfig()

    @field_validator("stations")
    @classmethod
    def _unique_names(cls, value: list[StationConfig]) -> list[StationConfig]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"station names must be unique; repeated: {', '.join(dupes)}")
        return value


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            reason = "unknown key; remove it or check its spelling"
        elif err["type"] == "missing":
            reason = "required key is missing; add it"
        else:
            reason = err["msg"]
        lines.append(f"  {key}: {reason}")
    return "\n".join(lines)


def parse_config(text: str, base: Path, source: str = "line.yaml") -> LineConfig:
    """Parse YAML text; relative paths are resolved against ``base``."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    try:
        config = LineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
    return _resolve_paths(config, base)


def _resolve_paths(config: LineConfig, base: Path) -> LineConfig:
    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    hsm = config.hsm
    if hsm.softhsm_conf is not None:
        hsm = hsm.model_copy(update={"softhsm_conf": absolute(hsm.softhsm_conf)})
    journal = config.journal
    if journal.url.startswith("sqlite:///") and not journal.url.startswith("sqlite:////"):
        journal = journal.model_copy(
            update={"url": "sqlite:///" + str(absolute(Path(journal.url[10:])))})
    registry = config.registry.model_copy(
        update={"trust": [absolute(path) for path in config.registry.trust]})
    return config.model_copy(
        update={"data_dir": absolute(config.data_dir), "hsm": hsm, "journal": journal,
                "registry": registry}
    )


def load_config(path: Path = DEFAULT_CONFIG) -> LineConfig:
    """Read and validate ``line.yaml``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the line configuration: {exc.strerror}") from exc
    return parse_config(text, path.resolve().parent, str(path))


def hsm_pin(config: LineConfig, *, interactive: bool = True) -> str:
    """The HSM user PIN from ``hsm.pin_source``: environment, prompt, or the embedded file."""
    source = config.hsm.pin_source
    if source == "env":
        pin = os.environ.get(config.hsm.pin_env)
        if not pin:
            raise ConfigError(
                f"hsm.pin_source is 'env' but {config.hsm.pin_env} is not set; export it"
            )
        return pin
    if source == "prompt":
        if not interactive:
            raise ConfigError("hsm.pin_source is 'prompt' but there is no terminal to ask on")
        return getpass.getpass(f"PIN for HSM token {config.hsm.token}: ")
    try:
        return read_embedded_pin(config.data_dir)
    except OSError as exc:
        raise ConfigError(
            f"hsm.pin_source is 'embedded' but {embedded_pin_file(config.data_dir)} is missing; "
            "run `make setup`"
        ) from exc
