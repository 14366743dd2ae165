"""The team's PostgreSQL helpers against a real server (initdb + pg_ctl, 127.0.0.1 only)."""
from __future__ import annotations

import socket
import threading

import pytest

from ml_service.team import postgres

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A PostgreSQL cluster of its own: (port, passfile)."""
    base = tmp_path_factory.mktemp("pg")
    data = base / "pgdata"
    postgres.init(data, "test-password-1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    postgres.start(data, port, base / "postgres.log")
    passfile = base / "passfile"
    postgres.write_passfile(passfile, port, "test-password-1")
    yield port, passfile
    postgres.stop(data)


def test_many_processes_creating_one_database_at_once_all_succeed_and_one_created_it(server):
    """Two `mlops tune` workers joining one study on the team PostgreSQL created its database together: the
    loser got a unique violation on pg_database's name index and the worker failed (seen in make test)."""
    port, passfile = server
    for attempt in range(4):
        name = f"race_{attempt}"
        barrier = threading.Barrier(6)
        results, errors = [], []

        def create():
            barrier.wait()
            try:
                results.append(postgres.create_database(port, passfile, name))
            except Exception as exc:  # what a worker would have died of
                errors.append(exc)

        threads = [threading.Thread(target=create) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert sorted(results) == [False] * 5 + [True]


def test_a_database_that_exists_is_not_created_again(server):
    port, passfile = server
    assert postgres.create_database(port, passfile, "once") is True
    assert postgres.create_database(port, passfile, "once") is False
