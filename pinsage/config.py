"""Configuration as plain frozen dataclasses, loaded from YAML and validated.

One dataclass per concern, nested in `PipelineConfig`. Unknown keys, wrong types and
out-of-range values raise `ConfigError` naming the key (and the nearest valid one).
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pinsage.data.synth import SynthConfig
from pinsage.errors import ConfigError

__all__ = ["PipelineConfig", "SamplerConfig", "load_config", "load_section"]

T = TypeVar("T")


@dataclass(frozen=True)
class SamplerConfig:
    """Random-walk importance sampling (DESIGN.md "Importance neighbourhood")."""

    num_walks: int = 100  # walks per seed; more = stabler importance weights, slower
    walk_length: int = 3  # most traversals (item -> context -> item) per walk
    restart: float = 0.5  # probability that a walk ends after each traversal
    top_k: int = 10  # T: neighbours kept per node, by visit count
    num_layers: int = 2  # K: convolution layers, hence sampled hops per seed
    seed: int = 0  # every random draw flows from this

    def __post_init__(self) -> None:
        for name in ("num_walks", "walk_length", "top_k", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"sampler.{name} must be >= 1, got {getattr(self, name)}"
                )
        if not 0.0 <= self.restart <= 1.0:
            raise ConfigError(f"sampler.restart must be in [0, 1], got {self.restart}")


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline's configuration (grows with each stage)."""

    synth: SynthConfig = field(default_factory=SynthConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # YAML writes 1 for 1.0
    if isinstance(annotation, type) and not is_dataclass(annotation):
        if not isinstance(value, annotation) or (
            annotation is int and isinstance(value, bool)
        ):
            raise ConfigError(
                f"{where}: expected {annotation.__name__}, got {type(value).__name__} "
                f"({value!r})"
            )
    return value


def load_section(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad types."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: expected a mapping of keys, got {type(raw).__name__}"
        )
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    values = {}
    for key, value in raw.items():
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(
                f"{where}: unknown key '{key}'{hint} (allowed: {allowed})"
            )
        annotation = hints[key]
        if is_dataclass(annotation):
            values[key] = load_section(annotation, value, f"{where}.{key}")
        elif isinstance(annotation, types.UnionType):
            values[key] = value
        else:
            values[key] = _check_type(value, annotation, f"{where}.{key}")
    return cls(**values)


def load_config(path: Path) -> PipelineConfig:
    """Load and validate a YAML pipeline config."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return load_section(PipelineConfig, raw, str(path))
