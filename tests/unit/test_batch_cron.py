"""Cron schedules (upstream's robfig/cron ParseStandard semantics, DST and time zones included) and the CronJob
controller's schedule-time decisions."""
from __future__ import annotations

import datetime
import zoneinfo

import pytest

from apiserver.controllers import cronjob_rules as rules
from apiserver.cron import CronError, parse_standard, schedule_for

UTC = datetime.timezone.utc
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def at(text: str, zone: datetime.tzinfo = UTC) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


@pytest.mark.parametrize("start, spec, expected", [
    ("2012-07-09T14:45:00", "0/15 * * * *", "2012-07-09T15:00:00"),
    ("2012-07-09T14:59:00", "0/15 * * * *", "2012-07-09T15:00:00"),
    ("2012-07-09T14:59:59", "0/15 * * * *", "2012-07-09T15:00:00"),
    ("2012-07-09T15:45:00", "20-35/15 * * * *", "2012-07-09T16:20:00"),       # wraps the hour
    ("2012-07-09T23:46:00", "*/15 * * * *", "2012-07-10T00:00:00"),           # wraps the day
    ("2012-07-09T23:45:00", "20-35/15 * * * *", "2012-07-10T00:20:00"),
    ("2012-07-09T23:35:51", "20-35/15 1/2 * * *", "2012-07-10T01:20:00"),
    ("2012-07-09T23:35:51", "20-35/15 10-12 * * *", "2012-07-10T10:20:00"),
    ("2012-07-09T23:35:51", "20-35/15 1/2 */2 * *", "2012-07-11T01:20:00"),
    ("2012-07-09T23:35:51", "20-35/15 * 9-20 Jul *", "2012-07-10T00:20:00"),
    ("2012-07-09T23:35:00", "0 0 9 Apr-Oct ?", "2012-08-09T00:00:00"),        # wraps the month
    ("2012-07-09T23:35:00", "0 0 */5 Apr,Aug,Oct Mon", "2012-08-01T00:00:00"),  # dom OR dow when both restricted
    ("2012-07-09T23:35:00", "0 0 */5 Oct Mon", "2012-10-01T00:00:00"),
    ("2012-07-09T23:35:00", "0 0 * Feb Mon", "2013-02-04T00:00:00"),          # wraps the year
    ("2012-07-09T23:35:00", "0 0 * Feb Mon/2", "2013-02-01T00:00:00"),        # dom * : dow alone decides
    ("2012-12-31T23:59:45", "* * * * *", "2013-01-01T00:00:00"),
    ("2012-07-09T23:35:00", "0 0 29 Feb ?", "2016-02-29T00:00:00"),           # leap years only
    ("2026-01-01T10:00:30", "@hourly", "2026-01-01T11:00:00"),
    ("2026-01-01T10:00:30", "@daily", "2026-01-02T00:00:00"),
    ("2026-01-01T10:00:30", "@midnight", "2026-01-02T00:00:00"),
    ("2026-01-01T10:00:30", "@weekly", "2026-01-04T00:00:00"),               # Sunday
    ("2026-01-15T10:00:30", "@monthly", "2026-02-01T00:00:00"),
    ("2026-01-15T10:00:30", "@yearly", "2027-01-01T00:00:00"),
    ("2026-01-15T10:00:30", "@annually", "2027-01-01T00:00:00"),
    ("2026-01-15T10:00:30.5", "@every 90s", "2026-01-15T10:02:00"),
    ("2026-01-03T00:00:00", "0 9 * * MON-FRI", "2026-01-05T09:00:00"),
    ("2026-01-03T00:00:00", "0 9 * * sun", "2026-01-04T09:00:00"),
    ("2026-01-03T00:00:00", "*/1 * * * *", "2026-01-03T00:01:00"),
])
def test_next_time(start, spec, expected):
    assert parse_standard(spec).next_after(at(start)) == at(expected)


@pytest.mark.parametrize("start, spec, expected", [
    # spring forward (2am EST -> 3am EDT): a time in the skipped hour waits for the next year
    ("2012-03-11T00:00:00-05:00", "TZ=America/New_York 30 2 11 Mar ?", "2013-03-11T02:30:00-04:00"),
    ("2012-03-11T00:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T01:00:00-05:00"),
    ("2012-03-11T01:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T03:00:00-04:00"),
    ("2012-03-11T03:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T04:00:00-04:00"),
    ("2012-03-11T00:00:00-05:00", "TZ=America/New_York 0 1 * * ?", "2012-03-11T01:00:00-05:00"),
    ("2012-03-11T01:00:00-05:00", "TZ=America/New_York 0 1 * * ?", "2012-03-12T01:00:00-04:00"),
    ("2012-03-11T00:00:00-05:00", "TZ=America/New_York 0 2 * * ?", "2012-03-12T02:00:00-04:00"),  # skipped
    # fall back (2am EDT -> 1am EST): the repeated hour fires twice
    ("2012-11-04T00:00:00-04:00", "TZ=America/New_York 30 2 04 Nov ?", "2012-11-04T02:30:00-05:00"),
    ("2012-11-04T01:45:00-04:00", "TZ=America/New_York 30 1 04 Nov ?", "2012-11-04T01:30:00-05:00"),
    ("2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T01:00:00-04:00"),
    ("2012-11-04T01:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T01:00:00-05:00"),
    ("2012-11-04T01:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T02:00:00-05:00"),
    ("2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 1 * * ?", "2012-11-04T01:00:00-04:00"),
    ("2012-11-04T01:00:00-04:00", "TZ=America/New_York 0 1 * * ?", "2012-11-04T01:00:00-05:00"),
    ("2012-11-04T01:00:00-05:00", "TZ=America/New_York 0 1 * * ?", "2012-11-05T01:00:00-05:00"),
    ("2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 2 * * ?", "2012-11-04T02:00:00-05:00"),
    ("2012-11-04T02:00:00-05:00", "TZ=America/New_York 0 2 * * ?", "2012-11-05T02:00:00-05:00"),
    ("2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 3 * * ?", "2012-11-04T03:00:00-05:00"),
])
def test_daylight_saving_changes(start, spec, expected):
    assert parse_standard(spec).next_after(at(start)) == at(expected)


def test_schedule_without_zone_follows_the_time_asked_about():
    start = datetime.datetime(2012, 11, 4, 0, 0, tzinfo=NEW_YORK)
    assert parse_standard("0 3 3 * ?").next_after(start) == at("2012-12-03T03:00:00-05:00")


def test_time_zone_field_and_utc_default():
    # spec.timeZone shifts the schedule: 09:00 in Tokyo is 00:00 UTC
    tokyo = schedule_for("0 9 * * *", "Asia/Tokyo")
    assert tokyo.next_after(at("2026-01-01T01:00:00")) == at("2026-01-02T00:00:00")
    assert schedule_for("0 9 * * *", None).next_after(at("2026-01-01T01:00:00")) == at("2026-01-01T09:00:00")
    # an unknown zone falls back to the plain schedule (validation refuses such zones anyway)
    assert schedule_for("0 9 * * *", "Nowhere/City").next_after(at("2026-01-01T01:00:00")) == at("2026-01-01T09:00:00")


@pytest.mark.parametrize("spec", ["0 0 30 Feb ?", "0 0 31 Apr ?"])
def test_unsatisfiable_schedules_have_no_next_time(spec):
    assert parse_standard(spec).next_after(at("2012-07-09T23:35:00")) is None


@pytest.mark.parametrize("spec, message", [
    ("", "empty spec string"),
    ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
    ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("* 24 * * *", "end of range (24) above maximum (23): 24"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("* * * 13 *", "end of range (13) above maximum (12): 13"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("a * * * *", 'failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax'),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("*/2/3 * * * *", "too many slashes: */2/3"),
    ("-1 * * * *", 'failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every x", 'failed to parse duration @every x: time: invalid duration "x"'),
    ("TZ=Nowhere/City * * * * *", "provided bad location Nowhere/City: unknown time zone Nowhere/City"),
])
def test_parse_errors_are_upstreams(spec, message):
    with pytest.raises(CronError) as caught:
        parse_standard(spec)
    assert str(caught.value) == message


# --- the controller's schedule decisions ---------------------------------------------------------
def cronjob(schedule="0 * * * *", created="2016-05-19T10:00:00Z", last=None, deadline=None, zone=None):
    spec = {"schedule": schedule, "jobTemplate": {"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}},
                                                  "spec": {"template": {"spec": {"containers": []}}}}}
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    if zone is not None:
        spec["timeZone"] = zone
    status = {"lastScheduleTime": last} if last else {}
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "cj", "namespace": "ns", "uid": "cj-uid", "creationTimestamp": created},
            "spec": spec, "status": status}


def recent(obj, now, include_deadline=True):
    spec = obj["spec"]
    return rules.most_recent_schedule_time(obj, at(now), schedule_for(spec["schedule"], spec.get("timeZone")),
                                           include_deadline)


def test_most_recent_schedule_time():
    # before the first schedule time after creation: nothing to do
    assert recent(cronjob(), "2016-05-19T10:59:00").most_recent is None
    first = recent(cronjob(), "2016-05-19T11:00:05")
    assert first.most_recent == at("2016-05-19T11:00:00") and first.missed == "none"
    # several missed: the latest one, reported as a few missed
    missed = recent(cronjob(), "2016-05-19T13:30:00")
    assert missed.most_recent == at("2016-05-19T13:00:00") and missed.missed == "few"
    # from the last schedule time rather than the creation
    after_last = recent(cronjob(last="2016-05-19T13:00:00Z"), "2016-05-19T13:30:00")
    assert after_last.most_recent is None and after_last.earliest == at("2016-05-19T13:00:00")
    # more than 100 missed
    many = recent(cronjob(), "2016-06-19T10:30:00")
    assert many.missed == "many" and many.most_recent == at("2016-06-19T10:00:00")
    # startingDeadlineSeconds narrows the window (only when asked to)
    narrowed = recent(cronjob(deadline=600), "2016-06-19T10:30:00")
    assert narrowed.most_recent is None and narrowed.earliest == at("2016-06-19T10:20:00")
    assert recent(cronjob(deadline=600), "2016-06-19T10:30:00", include_deadline=False).most_recent is not None
    # every minute: the acceptance schedule
    minutely = recent(cronjob("*/1 * * * *", created="2026-01-01T00:00:20Z"), "2026-01-01T00:01:01")
    assert minutely.most_recent == at("2026-01-01T00:01:00")
    # a schedule that never happens is an error, as upstream's
    rogue = recent(cronjob("59 23 31 2 *"), "2016-05-19T13:30:00")
    assert rogue.error == "time difference between two schedules is less than 1 second"
    # @every counts from the creation
    every = recent(cronjob("@every 1h", created="2016-05-19T10:00:10Z"), "2016-05-19T11:00:20")
    assert every.most_recent == at("2016-05-19T11:00:10")


def test_next_schedule_delay():
    schedule = schedule_for("0 * * * *", None)
    assert rules.next_schedule_delay(cronjob(), at("2016-05-19T10:30:00"), schedule) == pytest.approx(1800.1)
    # with a missed time, from now
    assert rules.next_schedule_delay(cronjob(), at("2016-05-19T13:30:00"), schedule) == pytest.approx(1800.1)
    zoned = cronjob("0 9 * * *", zone="Asia/Tokyo")
    assert rules.next_schedule_delay(zoned, at("2016-05-19T23:00:00"), schedule_for("0 9 * * *", "Asia/Tokyo")) \
        == pytest.approx(3600.1)


def test_job_from_template():
    obj = cronjob(zone="Asia/Tokyo")
    job = rules.job_from_template(obj, at("2016-05-19T10:00:00"))
    assert job["metadata"]["name"] == "cj-24394200"  # 1463652000 s / 60: minutes since the epoch: one name per schedule time
    assert job["metadata"]["labels"] == {"a": "b"}
    assert job["metadata"]["annotations"] == {"x": "y", "batch.kubernetes.io/cronjob-scheduled-timestamp":
                                              "2016-05-19T19:00:00+09:00"}
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj",
                                                   "uid": "cj-uid", "controller": True, "blockOwnerDeletion": True}]
    assert job["spec"] == {"template": {"spec": {"containers": []}}}
    utc_job = rules.job_from_template(cronjob(), at("2016-05-19T10:00:00"))
    assert utc_job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        "2016-05-19T10:00:00Z"


def test_history_removes_the_oldest_finished_jobs():
    def job(name, start):
        return {"metadata": {"name": name}, "status": {"startTime": start} if start else {}}
    jobs = [job("c", "2026-01-01T00:03:00Z"), job("a", "2026-01-01T00:01:00Z"), job("unstarted", None),
            job("b", "2026-01-01T00:01:00Z")]
    assert [j["metadata"]["name"] for j in rules.jobs_beyond_history(jobs, 2)] == ["a", "b"]
    assert rules.jobs_beyond_history(jobs, 4) == []
    assert [j["metadata"]["name"] for j in rules.jobs_beyond_history(jobs, 0)] == ["a", "b", "c", "unstarted"]


def test_rfc1123z():
    assert rules.rfc1123z(at("2026-01-05T09:04:05")) == "Mon, 05 Jan 2026 09:04:05 +0000"
