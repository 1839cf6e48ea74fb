"""Services against the database: selection advances the stored rotation, writes keep the rules."""

from __future__ import annotations

from collections import Counter

import pytest

from scheduler import selectors, services
from scheduler.exceptions import HostTaken, NameTaken, NoBackendAvailable
from scheduler.models import AppPolicy, Backend

pytestmark = pytest.mark.django_db


def firsts(n: int, app_id: str = "txt2img") -> list[str]:
    return [services.backend_select(app_id=app_id).backends[0].name for _ in range(n)]


def test_round_robin_state_lives_in_the_database(make_backend):
    for name in "abc":
        make_backend(name=name)
    services.policy_set(app_id="txt2img", policy="round_robin")
    assert firsts(2) == ["a", "b"]
    cursor = AppPolicy.objects.get(app_id="txt2img").state["cursor"]
    assert cursor[1] == str(Backend.objects.get(name="b").id)
    assert firsts(4) == ["c", "a", "b", "c"]


def test_round_robin_backend_down_mid_cycle(make_backend):
    c = [make_backend(name=n) for n in "abcd"][2]
    services.policy_set(app_id="txt2img", policy="round_robin")
    assert firsts(1) == ["a"]
    services.backend_set_status(backend=c, status="down")
    assert firsts(2) == ["b", "d"]
    services.backend_set_status(backend=c, status="active")
    assert firsts(4) == ["a", "b", "c", "d"]


def test_round_robin_last_served_deleted(make_backend):
    for name in "abc":
        make_backend(name=name)
    services.policy_set(app_id="txt2img", policy="round_robin")
    assert firsts(2) == ["a", "b"]
    services.backend_delete(backend=Backend.objects.get(name="b"))
    assert firsts(3) == ["c", "a", "c"]


def test_round_robin_limit_returns_rest_in_rotation(make_backend):
    for name in "abc":
        make_backend(name=name)
    services.policy_set(app_id="txt2img", policy="round_robin", limit=3)
    firsts(1)
    assert [b.name for b in services.backend_select(app_id="txt2img").backends] == ["b", "c", "a"]


def test_weighted_exact_counts_and_fresh_cycle_on_weight_change(make_backend):
    a = make_backend(name="a", weight=5)
    make_backend(name="b")
    make_backend(name="c")
    services.policy_set(app_id="txt2img", policy="weighted")
    assert "".join(firsts(14)) == "aabacaa" * 2
    services.backend_set_weight(backend=a, weight=1)
    assert Counter(firsts(3)) == Counter("abc")


def test_policy_change_resets_state(make_backend):
    for name in "ab":
        make_backend(name=name)
    services.policy_set(app_id="txt2img", policy="round_robin")
    firsts(1)
    services.policy_set(app_id="txt2img", policy="weighted")
    assert AppPolicy.objects.get(app_id="txt2img").state == {}
    services.policy_set(app_id="txt2img", policy="round_robin")
    assert firsts(1) == ["a"]


def test_stateless_policy_writes_no_state(make_backend):
    make_backend(name="a")
    services.policy_set(app_id="txt2img", policy="random")
    firsts(3)
    assert AppPolicy.objects.get(app_id="txt2img").state == {}


def test_stateful_default_policy_from_settings(settings, make_backend):
    settings.SCHEDULER = {"DEFAULT_POLICY": "round_robin"}
    for name in "ab":
        make_backend(name=name)
    assert firsts(3) == ["a", "b", "a"]
    assert selectors.policy_get(app_id="txt2img").policy == "round_robin"


def test_stored_policy_removed_from_settings_falls_back_to_default(make_backend):
    make_backend(name="a")
    AppPolicy.objects.create(app_id="txt2img", policy="gone")
    result = services.backend_select(app_id="txt2img")
    assert result.policy == "all_active"


def test_select_without_active_backend(make_backend):
    make_backend(status="down")
    with pytest.raises(NoBackendAvailable):
        services.backend_select(app_id="txt2img")


def test_conflicts_are_named(make_backend):
    make_backend(name="n", host="h")
    with pytest.raises(NameTaken):
        services.backend_register(app_id="txt2img", name="n", host="other")
    with pytest.raises(HostTaken):
        services.backend_register(app_id="elsewhere", name="m", host="h")
    other = make_backend(name="o")
    with pytest.raises(NameTaken):
        services.backend_update(backend=other, name="n")
    assert Backend.objects.get(pk=other.pk).name == "o"


def test_update_rejects_unknown_fields(make_backend):
    with pytest.raises(TypeError):
        services.backend_update(backend=make_backend(), id="x")


@pytest.mark.parametrize(
    "fields",
    [
        {"weight": 0},
        {"weight": 1_000_001},
        {"status": "up"},
        {"name": ""},
        {"host": ""},
        {"app_id": ""},
    ],
)
def test_database_constraints_hold_without_the_api(make_backend, fields):
    from django.db import IntegrityError, transaction

    backend = make_backend()
    with pytest.raises(IntegrityError), transaction.atomic():
        Backend.objects.filter(pk=backend.pk).update(**fields)


def test_limit_constraint():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        AppPolicy.objects.create(app_id="x", policy="random", limit=101)


@pytest.mark.django_db(transaction=True)
def test_selection_outside_any_transaction_commits_and_leaves_none_open(make_backend):
    """Outside a test transaction (as in a server), the rotation advances, a refused
    selection rolls back, and the connection comes back idle."""
    from django.db import connection

    for name in "abc":
        make_backend(name=name)
    services.policy_set(app_id="txt2img", policy="round_robin")
    assert firsts(4) == ["a", "b", "c", "a"]
    make_backend(name="d", status="down")
    with pytest.raises(NoBackendAvailable):
        services.backend_select(app_id="empty")
    assert firsts(3) == ["b", "c", "a"]
    assert not connection.in_atomic_block
    if connection.vendor == "postgresql":
        from psycopg.pq import TransactionStatus

        assert connection.connection.info.transaction_status == TransactionStatus.IDLE
