"""Selection policies: pure strategies behind a registry.

A policy gets the app's candidates (active backends, oldest first), the limit and the
state it returned last time, and returns the backends to use plus its new state. It does
no I/O: `services.backend_select` loads candidates and state and stores the new state in
the same transaction, which is what makes one rotation shared by every server process.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol


class Candidate(Protocol):
    """What a policy may read of a backend."""

    id: Any
    weight: int
    created: datetime


@dataclass(frozen=True)
class Selection:
    backends: list[Any]
    state: dict[str, Any] = field(default_factory=dict)


class Policy(ABC):
    """Base class. Subclasses set `name`, `default_limit`, `description` and `select`."""

    name: ClassVar[str]
    default_limit: ClassVar[int]
    description: ClassVar[str]
    # Stateless policies skip the row lock and state write.
    stateful: ClassVar[bool] = False

    @abstractmethod
    def select(
        self, candidates: Sequence[Candidate], *, limit: int, state: dict[str, Any]
    ) -> Selection:
        """Return up to `limit` distinct candidates, the one to use first, and the new state."""


def _key(backend: Candidate) -> str:
    return str(backend.id)


def _order_key(backend: Candidate) -> tuple[str, str]:
    # Creation order, with the id breaking ties, exactly as the database orders candidates.
    return (backend.created.isoformat(timespec="microseconds"), str(backend.id))


class RoundRobin(Policy):
    name = "round_robin"
    default_limit = 1
    description = (
        "Each selection starts at the candidate after the one served last, in creation order, "
        "wrapping around; the rest follow in rotation."
    )
    stateful = True

    def select(
        self, candidates: Sequence[Candidate], *, limit: int, state: dict[str, Any]
    ) -> Selection:
        if not candidates:
            return Selection([], state)
        ordered = sorted(candidates, key=_order_key)
        # The cursor is the served backend's position in creation order, not its id, so the
        # next turn is well defined even after that backend went down or was removed.
        cursor = state.get("cursor")
        start = 0
        if cursor is not None:
            last = tuple(cursor)
            start = next((i for i, b in enumerate(ordered) if _order_key(b) > last), 0)
        rotated = ordered[start:] + ordered[:start]
        chosen = rotated[:limit]
        return Selection(chosen, {"cursor": list(_order_key(chosen[0]))})


class Weighted(Policy):
    name = "weighted"
    default_limit = 3
    description = (
        "nginx's smooth weighted round robin: over any W consecutive selections (W = sum of "
        "weights) each backend comes first exactly `weight` times, interleaved; the rest "
        "follow by descending weight."
    )
    stateful = True

    def select(
        self, candidates: Sequence[Candidate], *, limit: int, state: dict[str, Any]
    ) -> Selection:
        if not candidates:
            return Selection([], state)
        ordered = sorted(candidates, key=_order_key)
        signature = [[_key(b), b.weight] for b in ordered]
        current: dict[str, int] = (
            dict(state.get("current", {})) if state.get("signature") == signature else {}
        )
        total = sum(b.weight for b in ordered)
        best = None
        for backend in ordered:
            key = _key(backend)
            current[key] = current.get(key, 0) + backend.weight
            # Strictly greater: on a tie the older backend wins, as in nginx.
            if best is None or current[key] > current[_key(best)]:
                best = backend
        assert best is not None
        current[_key(best)] -= total
        rest = sorted((b for b in ordered if b is not best), key=lambda b: -b.weight)
        chosen = [best, *rest][:limit]
        return Selection(chosen, {"signature": signature, "current": current})


class AllActive(Policy):
    name = "all_active"
    default_limit = 5
    description = "The oldest active backends, oldest first."

    def select(
        self, candidates: Sequence[Candidate], *, limit: int, state: dict[str, Any]
    ) -> Selection:
        return Selection(sorted(candidates, key=_order_key)[:limit], state)


class Random(Policy):
    name = "random"
    default_limit = 2
    description = "Distinct active backends in uniformly random order."

    def __init__(self, rng: random.Random | None = None) -> None:
        # SystemRandom: no shared seed between forked server processes.
        self.rng = rng or random.SystemRandom()

    def select(
        self, candidates: Sequence[Candidate], *, limit: int, state: dict[str, Any]
    ) -> Selection:
        return Selection(self.rng.sample(list(candidates), min(limit, len(candidates))), state)


BUILTIN_POLICIES: tuple[type[Policy], ...] = (RoundRobin, Weighted, AllActive, Random)


class PolicyRegistry:
    """The built-in policies plus those named in `SCHEDULER["POLICIES"]`, by name."""

    def __init__(self) -> None:
        self._policies: dict[str, Policy] | None = None

    def _load(self) -> dict[str, Policy]:
        from scheduler.conf import scheduler_settings

        policies: dict[str, Policy] = {}
        for cls in (*BUILTIN_POLICIES, *scheduler_settings.POLICIES):
            policies[cls.name] = cls()
        return policies

    @property
    def policies(self) -> dict[str, Policy]:
        if self._policies is None:
            self._policies = self._load()
        return self._policies

    def get(self, name: str) -> Policy | None:
        return self.policies.get(name)

    def names(self) -> list[str]:
        return list(self.policies)

    def all(self) -> list[Policy]:
        return list(self.policies.values())

    def reload(self) -> None:
        self._policies = None


registry = PolicyRegistry()
