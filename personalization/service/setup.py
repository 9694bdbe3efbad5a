"""A line as the services see it: its validated ``line.yaml`` and where that file lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from personalization.config import DEFAULT_CONFIG, LineConfig, load_config
from personalization.profile import DocumentProfile, load_profile


@dataclass(frozen=True, slots=True)
class LineSetup:
    """One line's configuration, parsed once, and the folder its relative names start from."""

    config: LineConfig
    base: Path

    @classmethod
    def load(cls, path: Path = DEFAULT_CONFIG) -> LineSetup:
        """Read and validate ``line.yaml`` (raises ConfigError naming the key and the fix)."""
        return cls(load_config(path), path.resolve().parent)

    def profile(self) -> DocumentProfile:
        """The document profile the line personalizes (``profile`` in line.yaml)."""
        return load_profile(self.config.profile, self.base)
