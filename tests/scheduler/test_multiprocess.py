"""Rotation shared between server processes: real daphne processes on one database."""

from __future__ import annotations

import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.livesite import LiveSite

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def site(request, tmp_path):
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with LiveSite(tmp_path, postgres_url=postgres_url) as live:
        live.start(2)
        yield live


def register(site: LiveSite, app_id: str, weights: list[int]) -> list[str]:
    session = site.session()
    ids = []
    for i, weight in enumerate(weights):
        response = session.post(
            f"{site.urls[0]}/v1/{app_id}/backends",
            json={"name": f"b{i}", "host": f"http://{app_id}-{i}:8188", "weight": weight},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def set_policy(site: LiveSite, app_id: str, policy: str) -> None:
    response = site.session().put(
        f"{site.urls[1]}/v1/{app_id}/policy", json={"policy": policy}, timeout=10
    )
    assert response.status_code == 200, response.text


def first(session, url: str, app_id: str) -> str:
    response = session.get(f"{url}/v1/{app_id}/select", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["backends"][0]["id"]


def test_alternating_processes_share_one_round_robin(site):
    ids = register(site, "rr", [1, 1, 1, 1])
    set_policy(site, "rr", "round_robin")
    session = site.session()
    urls = itertools.cycle(site.urls)
    order = [first(session, next(urls), "rr") for _ in range(12)]
    assert order == ids * 3


def test_backend_down_mid_cycle_across_processes(site):
    ids = register(site, "mid", [1, 1, 1])
    set_policy(site, "mid", "round_robin")
    session = site.session()
    assert first(session, site.urls[0], "mid") == ids[0]
    down = session.patch(f"{site.urls[1]}/v1/mid/backends/{ids[1]}?status=down", timeout=10)
    assert down.status_code == 200
    assert [first(session, url, "mid") for url in site.urls * 2] == [ids[2], ids[0]] * 2


def test_concurrent_clients_on_both_processes_give_exact_counts(site):
    ids = register(site, "conc", [1, 1, 1, 1, 1])
    set_policy(site, "conc", "round_robin")
    per_backend, clients = 40, 8
    total = per_backend * len(ids)

    def work(n: int) -> list[str]:
        session = site.session()
        url = site.urls[n % len(site.urls)]
        return [first(session, url, "conc") for _ in range(total // clients)]

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(work, range(clients)))
    counts = Counter(itertools.chain.from_iterable(results))
    assert counts == dict.fromkeys(ids, per_backend)


def test_weighted_exact_counts_across_processes(site):
    ids = register(site, "w", [5, 1, 1])
    set_policy(site, "w", "weighted")
    session = site.session()
    urls = itertools.cycle(site.urls)
    order = [first(session, next(urls), "w") for _ in range(14)]
    a, b, c = ids
    assert order == [a, a, b, a, c, a, a] * 2
