"""Leader election: the pure tryAcquireOrRenew decision, and two electors contending on one store."""
import asyncio
import datetime

import pytest

from apiserver.api import API
from apiserver.leader_election import ElectionConfig, LeaderElector, LeaderRecord, Observation, plan_attempt, released
from shipmate.timeutil import micro_time
from apiserver.storage.sqlite import SQLiteStorage

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)


def test_micro_time_has_six_fractional_digits():
    assert micro_time(T0) == "2026-01-01T12:00:00.123456Z"


def test_no_lease_creates_one_held_by_us():
    attempt = plan_attempt(None, None, "me", 15, T0, 100.0)
    assert attempt.reason == "create"
    assert attempt.write == LeaderRecord("me", 15, micro_time(T0), micro_time(T0), 0)


def test_unexpired_lease_of_another_is_left_alone():
    other = LeaderRecord("other", 15, "t", "t", 3)
    first = plan_attempt(other, None, "me", 15, T0, 100.0)
    assert first.write is None and first.observation == Observation(other, 100.0)
    # Same record seen again 14.9 s later (local time): still held.
    assert plan_attempt(other, first.observation, "me", 15, T0, 114.9).write is None


def test_expiry_is_judged_by_local_observation_time_not_the_stored_renew_time():
    other = LeaderRecord("other", 15, "1999-01-01T00:00:00.000000Z", "1999-01-01T00:00:00.000000Z", 3)
    # A renewTime decades old means nothing on its own: clocks differ; we first wait a full duration.
    assert plan_attempt(other, None, "me", 15, T0, 500.0).write is None


def test_expired_lease_is_taken_over_counting_a_transition():
    other = LeaderRecord("other", 15, "a", "r", 3)
    seen = Observation(other, 100.0)
    attempt = plan_attempt(other, seen, "me", 15, T0, 115.0)
    assert attempt.reason == "acquire"
    assert attempt.write == LeaderRecord("me", 15, micro_time(T0), micro_time(T0), 4)


def test_a_renewed_record_restarts_the_expiry_clock():
    other = LeaderRecord("other", 15, "a", "r1", 3)
    renewed = LeaderRecord("other", 15, "a", "r2", 3)
    attempt = plan_attempt(renewed, Observation(other, 100.0), "me", 15, T0, 114.0)
    assert attempt.write is None and attempt.observation == Observation(renewed, 114.0)
    assert plan_attempt(renewed, attempt.observation, "me", 15, T0, 120.0).write is None


def test_holder_renews_keeping_acquire_time_and_transitions():
    mine = LeaderRecord("me", 15, "acquired", "old", 2)
    attempt = plan_attempt(mine, Observation(mine, 100.0), "me", 15, T0, 200.0)
    assert attempt.reason == "renew"
    assert attempt.write == LeaderRecord("me", 15, "acquired", micro_time(T0), 2)


def test_released_lease_is_taken_at_once():
    gone = released(LeaderRecord("other", 15, "a", "r", 5), T0)
    assert gone.holder_identity == "" and gone.lease_duration_seconds == 1 and gone.lease_transitions == 5
    attempt = plan_attempt(gone, None, "me", 15, T0, 100.0)
    assert attempt.reason == "acquire" and attempt.write.lease_transitions == 6


@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    yield api
    await storage.close()


FAST = ElectionConfig(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)


async def _wait(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_one_leader_at_a_time_and_handover_when_it_stops_renewing(api):
    terms: list[str] = []
    running: set[str] = set()

    def leader(name):
        async def lead():
            terms.append(name)
            running.add(name)
            try:
                await asyncio.Event().wait()
            finally:
                running.discard(name)
        return lead

    a = LeaderElector(api, leader("a"), "host_a", FAST)
    b = LeaderElector(api, leader("b"), "host_b", FAST)
    task_a = asyncio.create_task(a.run())
    await _wait(lambda: running == {"a"})
    task_b = asyncio.create_task(b.run())
    await asyncio.sleep(1.5)  # longer than the lease: a keeps renewing, b must not take over
    assert running == {"a"} and terms == ["a"]
    lease = await api.registry("coordination.k8s.io", "leases").get("kube-system", "kube-controller-manager")
    assert lease["spec"]["holderIdentity"] == "host_a" and lease["spec"]["leaseDurationSeconds"] == 1
    assert lease["spec"]["leaseTransitions"] == 0 and lease["spec"]["renewTime"].endswith("Z")

    # a dies without releasing (as SIGKILL): b takes over once the lease expires.
    a._release = _no_release  # a killed process cannot step down
    task_a.cancel()
    await asyncio.gather(task_a, return_exceptions=True)
    await _wait(lambda: running == {"b"})
    lease = await api.registry("coordination.k8s.io", "leases").get("kube-system", "kube-controller-manager")
    assert lease["spec"]["holderIdentity"] == "host_b" and lease["spec"]["leaseTransitions"] == 1
    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)
    lease = await api.registry("coordination.k8s.io", "leases").get("kube-system", "kube-controller-manager")
    assert lease["spec"]["holderIdentity"] == ""  # graceful stop releases the lease


async def _no_release():
    return None


async def test_leader_steps_down_when_renewal_fails_past_the_deadline(api):
    running = asyncio.Event()
    stopped = asyncio.Event()

    async def lead():
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    elector = LeaderElector(api, lead, "host_a", FAST)
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(running.wait(), 5)

    async def broken(*args, **kwargs):
        raise ConnectionError("datastore unreachable")
    elector._attempt = broken
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(stopped.wait(), 5)
    assert asyncio.get_running_loop().time() - started >= FAST.renew_deadline - FAST.retry_period
    assert not elector.is_leader
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_leader_steps_down_at_once_when_another_holder_is_seen(api):
    stopped = asyncio.Event()
    running = asyncio.Event()

    async def lead():
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    elector = LeaderElector(api, lead, "host_a", ElectionConfig(lease_duration=30, renew_deadline=20,
                                                                retry_period=0.1))
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(running.wait(), 5)
    registry = api.registry("coordination.k8s.io", "leases")
    lease = await registry.get("kube-system", "kube-controller-manager")
    lease["spec"]["holderIdentity"] = "intruder"
    await api.update(registry, "kube-system", "kube-controller-manager", lease)
    await asyncio.wait_for(stopped.wait(), 2)  # far less than the 20 s renew deadline
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_new_term_calls_lead_afresh(api):
    calls = []

    async def lead():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("control loops died")
        await asyncio.Event().wait()

    elector = LeaderElector(api, lead, "host_a", FAST)
    task = asyncio.create_task(elector.run())
    await _wait(lambda: len(calls) == 2)
    assert elector.is_leader
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_new_record_is_dated_back_by_its_age_capped_at_the_retry_period():
    renewed_1s_ago = LeaderRecord("other", 15, "a", micro_time(T0 - datetime.timedelta(seconds=1)), 0)
    attempt = plan_attempt(renewed_1s_ago, None, "me", 15, T0, 100.0, max_backdate=2.0)
    assert attempt.observation.observed_at == pytest.approx(99.0)
    # A renewTime far in the past (a skewed clock) moves the observation back by the cap only.
    ancient = LeaderRecord("other", 15, "a", "1999-01-01T00:00:00.000000Z", 0)
    assert plan_attempt(ancient, None, "me", 15, T0, 100.0, max_backdate=2.0).observation.observed_at == 98.0
    # One from the future (clock behind ours): no backdating at all.
    future = LeaderRecord("other", 15, "a", micro_time(T0 + datetime.timedelta(seconds=5)), 0)
    assert plan_attempt(future, None, "me", 15, T0, 100.0, max_backdate=2.0).observation.observed_at == 100.0
    # Dated back 1 s: expired 14 s later, not 15.
    assert plan_attempt(renewed_1s_ago, attempt.observation, "me", 15, T0, 114.0, 2.0).reason == "acquire"
