"""Login rate limits of the Studio, through the real ASGI app with a fake clock (no sleeping): a user name
locked after too many failures (even the right password is refused), the lock lifting after the window,
a success clearing the count, a per-address limit across names, and the tables' size bound."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.config import load_settings
from ml_service.studio.app import create_app
from ml_service.studio.limits import Failures, LoginLimits
from tests.studio import test_studio
from tests.studio.test_studio import Browser, header

ALICE = "alice@example.com"  # added by the project fixture with test_studio.PASSWORD
project = test_studio.project  # the same workspace fixture as test_studio.py


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def fail(browser, user=ALICE, times=1):
    for _ in range(times):
        status, _, page = browser.log_in(user, "wrong password!")
        assert status == 401 and "wrong user or password" in page


def test_a_locked_user_is_refused_even_with_the_right_password_until_the_window_passes(project, clock):
    browser = Browser(create_app(project, clock=clock))
    fail(browser, times=5)
    anonymous = browser.cookie
    status, headers, page = browser.log_in(ALICE)  # the right password, during the lockout
    assert status == 429
    assert header(headers, "retry-after") == ["900"]
    assert "too many failed logins for this user; try again in 15 minutes" in page
    assert ">User</label>" in page and ">Password</label>" in page and ">Log in</button>" in page
    assert browser.cookie == anonymous and "location" not in dict(headers)
    assert browser.request("GET", "/runs")[0] == 303  # no identity: still sent to /login
    clock.now += 14 * 60 + 30
    status, headers, page = browser.log_in(ALICE)
    assert status == 429 and header(headers, "retry-after") == ["30"] and "try again in 1 minute" in page
    clock.now += 30
    status, headers, _ = browser.log_in(ALICE)
    assert status == 303 and header(headers, "location") == ["/runs"]
    assert browser.request("GET", "/runs")[0] == 200


def test_after_a_lockout_the_count_starts_again(project, clock):
    browser = Browser(create_app(project, clock=clock))
    fail(browser, times=5)
    clock.now += 15 * 60
    fail(browser)  # one failure after the lockout is one, not the sixth
    assert browser.log_in(ALICE)[0] == 303


def test_a_success_clears_the_users_failures(project, clock):
    browser = Browser(create_app(project, clock=clock))
    fail(browser, times=4)
    assert browser.log_in(ALICE)[0] == 303
    fail(browser, times=4)  # four more: would be eight without the reset
    assert browser.log_in(ALICE)[0] == 303


def test_other_users_are_not_locked_by_one_users_failures(project, clock):
    browser = Browser(create_app(project, clock=clock))
    fail(browser, "mallory@example.com", times=5)
    assert browser.log_in("mallory@example.com", "wrong password!")[0] == 429
    assert browser.log_in(ALICE)[0] == 303


def test_one_address_cannot_spray_many_user_names(project, clock):
    (project.root / "mlops.yml").write_text((project.root / "mlops.yml").read_text()
                                            + "studio: {login_max_failures_per_address: 6, login_window_minutes: 2}\n")
    browser = Browser(create_app(load_settings(), clock=clock))  # every request comes from 127.0.0.1
    for number in range(6):
        fail(browser, f"user{number}@example.com")
    status, headers, page = browser.log_in(ALICE)  # a fresh name, the right password
    assert status == 429 and header(headers, "retry-after") == ["120"]
    assert "too many failed logins from this address; try again in 2 minutes" in page
    clock.now += 120
    assert browser.log_in(ALICE)[0] == 303


def test_the_limits_are_checked_settings(project):
    (project.root / "mlops.yml").write_text("models: []\nstudio: {login_max_failures: 0}\n")
    with pytest.raises(Exception, match="studio.login_max_failures: must be a whole number of at least 1"):
        create_app(load_settings())


def test_the_tables_stay_at_their_cap_under_a_flood_of_names(clock):
    limits = LoginLimits(per_user=2, per_address=2, window=60, clock=clock, capacity=50)
    for number in range(1000):
        assert limits.begin(f"random{number}", f"10.0.{number // 250}.{number % 250}") == ("", 0.0)
    assert len(limits.users) == 50 and len(limits.addresses) == 50
    limits.begin("victim", "10.9.9.9")
    for number in range(48):
        limits.begin(f"later{number}", f"10.1.0.{number}")
    limits.begin("victim", "10.9.9.8")  # a second failure makes it the most recent entry again
    for number in range(10):
        limits.begin(f"last{number}", f"10.2.0.{number}")
    assert limits.begin("victim", "10.9.9.7") == ("user", 60.0)  # the least recently failed are dropped
    assert len(limits.users) == 50


def test_one_failure_below_the_address_limit_still_logs_in_and_successes_never_lock_it(project, clock):
    (project.root / "mlops.yml").write_text((project.root / "mlops.yml").read_text()
                                            + "studio: {login_max_failures_per_address: 3}\n")
    browser = Browser(create_app(load_settings(), clock=clock))
    fail(browser, "user1@example.com")
    fail(browser, "user2@example.com")  # two of three
    for _ in range(4):  # each success is counted while its password is checked, then taken back
        assert browser.log_in(ALICE)[0] == 303
    fail(browser, "user3@example.com")  # the third failure locks the address
    assert browser.log_in(ALICE)[0] == 429


@pytest.mark.parametrize("limit", [1, 3])
def test_the_configured_user_limit_locks_at_it_and_not_one_before(project, clock, limit):
    (project.root / "mlops.yml").write_text((project.root / "mlops.yml").read_text()
                                            + f"studio: {{login_max_failures: {limit}}}\n")
    browser = Browser(create_app(load_settings(), clock=clock))
    fail(browser, times=limit - 1)
    assert browser.log_in(ALICE)[0] == 303  # one below the limit: the right password gets in
    fail(browser, times=limit)
    assert browser.log_in(ALICE)[0] == 429


def test_failures_below_the_limit_are_forgotten_exactly_one_window_after_the_first(clock):
    limits = LoginLimits(per_user=3, per_address=100, window=60, clock=clock)
    for _ in range(2):
        assert limits.begin("bob", "10.0.0.1") == ("", 0.0)
    clock.now += 59  # one second before the window ends: the two failures still count
    limits.begin("bob", "10.0.0.1")
    assert limits.begin("bob", "10.0.0.1")[0] == "user"
    fresh = LoginLimits(per_user=3, per_address=100, window=60, clock=clock)
    for _ in range(2):
        fresh.begin("bob", "10.0.0.1")
    clock.now += 60  # exactly one window after the first: a new count
    for _ in range(2):
        assert fresh.begin("bob", "10.0.0.1") == ("", 0.0)
    assert fresh.begin("bob", "10.0.0.1") == ("", 0.0)  # the third of the new count locks, after it is counted
    assert fresh.begin("bob", "10.0.0.1") == ("user", 60.0)


@st.composite
def failures_in_one_window(draw):
    window = draw(st.integers(1, 3600))
    offsets = sorted(draw(st.lists(st.integers(0, window - 1), min_size=1, max_size=12)))
    return draw(st.integers(1, 8)), window, [offsets[0]] + [b - a for a, b in zip(offsets, offsets[1:])]


@settings(max_examples=200, deadline=None)
@given(case=failures_in_one_window())
def test_n_failures_in_one_window_lock_the_key_for_a_window_exactly_when_n_reaches_the_limit(case):
    limit, window, gaps = case
    clock = Clock()
    table = Failures(limit, window, clock)
    for gap in gaps:
        clock.now += gap
        table.fail("key")
    locked = len(gaps) >= limit
    assert table.wait("key") == (window if locked else 0.0)
    clock.now += window - 1
    assert (table.wait("key") > 0) == locked  # a second before the lock lifts
    clock.now += 1
    assert table.wait("key") == 0.0  # the moment it lifts
