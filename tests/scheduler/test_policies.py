"""The policies' exact rules, as pure functions: no database, no I/O."""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from scheduler import policies
from scheduler.policies import AllActive, Random, RoundRobin, Weighted, registry

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@dataclass
class B:
    name: str
    weight: int = 1
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    created: datetime = T0


def backends(*names: str, weights: dict[str, int] | None = None) -> list[B]:
    weights = weights or {}
    return [
        B(name, weights.get(name, 1), created=T0 + timedelta(seconds=i))
        for i, name in enumerate(names)
    ]


def firsts(policy, candidates, n, state=None, limit=1):
    state = state or {}
    out = []
    for _ in range(n):
        selection = policy.select(candidates, limit=limit, state=state)
        state = selection.state
        out.append(selection.backends[0].name)
    return out, state


class TestRoundRobin:
    def test_cycles_in_creation_order(self):
        out, _ = firsts(RoundRobin(), backends("a", "b", "c"), 7)
        assert out == ["a", "b", "c", "a", "b", "c", "a"]

    def test_rest_follow_in_rotation(self):
        candidates = backends("a", "b", "c")
        state = RoundRobin().select(candidates, limit=1, state={}).state
        selection = RoundRobin().select(candidates, limit=3, state=state)
        assert [b.name for b in selection.backends] == ["b", "c", "a"]

    def test_limit_larger_than_candidates(self):
        selection = RoundRobin().select(backends("a", "b"), limit=5, state={})
        assert [b.name for b in selection.backends] == ["a", "b"]

    def test_order_independent_of_input_order(self):
        candidates = backends("a", "b", "c")
        out, _ = firsts(RoundRobin(), list(reversed(candidates)), 3)
        assert out == ["a", "b", "c"]

    def test_backend_going_down_mid_cycle_costs_nobody_a_turn(self):
        a, b, c, d = backends("a", "b", "c", "d")
        out, state = firsts(RoundRobin(), [a, b, c, d], 1)  # a served
        # b goes down: c is next, then d, then the cycle wraps to a.
        more, state = firsts(RoundRobin(), [a, c, d], 3, state)
        assert out + more == ["a", "c", "d", "a"]

    def test_served_backend_removed_next_is_taken_by_creation_order(self):
        a, b, c = backends("a", "b", "c")
        _, state = firsts(RoundRobin(), [a, b, c], 2)  # a, b served; b was last
        out, _ = firsts(RoundRobin(), [a, c], 2, state)  # b is gone
        assert out == ["c", "a"]

    def test_backend_coming_back_gets_its_turn_in_this_cycle(self):
        a, b, c = backends("a", "b", "c")
        _, state = firsts(RoundRobin(), [a, c], 1)  # a served while b was down
        out, _ = firsts(RoundRobin(), [a, b, c], 3, state)
        assert out == ["b", "c", "a"]

    def test_never_same_first_twice_in_a_row(self):
        out, _ = firsts(RoundRobin(), backends("a", "b"), 10)
        assert all(x != y for x, y in itertools.pairwise(out))

    def test_same_created_time_breaks_ties_by_id(self):
        same = [B("x"), B("y"), B("z")]
        expected = [b.name for b in sorted(same, key=lambda b: str(b.id))]
        out, _ = firsts(RoundRobin(), same, 3)
        assert out == expected

    def test_empty(self):
        assert RoundRobin().select([], limit=1, state={}).backends == []


class TestWeighted:
    def test_nginx_example_sequence(self):
        out, _ = firsts(Weighted(), backends("a", "b", "c", weights={"a": 5}), 7)
        assert "".join(out) == "aabacaa"

    @pytest.mark.parametrize("weights", [{"a": 3, "b": 2, "c": 1}, {"a": 1, "b": 1}, {"a": 7}])
    def test_exact_counts_over_every_window(self, weights):
        candidates = backends(*weights, weights=weights)
        total = sum(weights.values())
        out, _ = firsts(Weighted(), candidates, total * 4)
        for start in range(0, len(out) - total + 1):
            assert Counter(out[start : start + total]) == Counter(weights)

    def test_rest_by_descending_weight(self):
        candidates = backends("a", "b", "c", weights={"a": 1, "b": 5, "c": 3})
        selection = Weighted().select(candidates, limit=3, state={})
        assert [b.name for b in selection.backends] == ["b", "c", "a"]

    def test_weight_change_starts_fresh_cycle(self):
        candidates = backends("a", "b", weights={"a": 2, "b": 1})
        _, state = firsts(Weighted(), candidates, 1)
        candidates[1].weight = 2
        out, _ = firsts(Weighted(), candidates, 4, state)
        assert out == ["a", "b", "a", "b"]

    def test_candidate_change_starts_fresh_cycle(self):
        a, b, c = backends("a", "b", "c", weights={"a": 3})
        _, state = firsts(Weighted(), [a, b, c], 2)
        out, _ = firsts(Weighted(), [a, b], 4, state)
        assert Counter(out) == Counter({"a": 3, "b": 1})
        assert out[0] == "a"


class TestAllActive:
    def test_oldest_first_up_to_limit(self):
        candidates = backends("a", "b", "c", "d")
        selection = AllActive().select(list(reversed(candidates)), limit=3, state={})
        assert [b.name for b in selection.backends] == ["a", "b", "c"]


class TestRandom:
    def test_distinct_and_limited(self):
        candidates = backends("a", "b", "c", "d")
        for _ in range(50):
            chosen = Random().select(candidates, limit=2, state={}).backends
            assert len(chosen) == 2 and len({b.name for b in chosen}) == 2

    def test_first_is_uniform(self):
        candidates = backends("a", "b", "c", "d")
        policy = Random(rng=random.Random(1234))
        counts = Counter(
            policy.select(candidates, limit=2, state={}).backends[0].name for _ in range(4000)
        )
        assert set(counts) == {"a", "b", "c", "d"}
        assert all(850 < n < 1150 for n in counts.values()), counts


class Sticky(policies.Policy):
    name = "sticky"
    default_limit = 1
    description = "Always the newest backend."

    def select(self, candidates, *, limit, state):
        return policies.Selection(sorted(candidates, key=lambda b: b.created)[-limit:], state)


def test_registry_lists_builtins_with_defaults():
    assert {(p.name, p.default_limit) for p in registry.all()} >= {
        ("round_robin", 1),
        ("weighted", 3),
        ("all_active", 5),
        ("random", 2),
    }


def test_site_adds_a_policy_from_settings(settings):
    settings.SCHEDULER = {"POLICIES": ["tests.scheduler.test_policies.Sticky"]}
    assert registry.get("sticky").__class__ is Sticky
    assert "sticky" in registry.names()
    settings.SCHEDULER = {}
    assert registry.get("sticky") is None
