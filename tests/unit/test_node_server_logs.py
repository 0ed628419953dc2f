"""CRI log parsing, kubelet's log options, tail and formatting; which container a log request means."""
from __future__ import annotations

import io

import pytest

from agent.node_server.cri_log import (LogFormatter, LogOptions, LogOptionsError, parse_cri_line,
                                       parse_log_query, parse_rfc3339_ns, tail_start)
from agent.node_server.pod_lookup import (ContainerLookupError, has_container, log_container_id,
                                          running_container_id)

NOW = 1_800_000_000 * 1_000_000_000
LINES = [b"2026-11-26T01:00:00.1Z stdout F one", b"2026-11-26T01:00:01.000000002Z stderr F two",
         b"2026-11-26T01:00:02Z stdout P thr", b"2026-11-26T01:00:02.5Z stdout F ee",
         b"2026-11-26T01:00:03Z stdout F "]


def test_rfc3339_keeps_nanoseconds_and_zones() -> None:
    base = parse_rfc3339_ns("2026-11-26T01:00:01Z")
    assert parse_rfc3339_ns("2026-11-26T01:00:01.000000002Z") == base + 2
    assert parse_rfc3339_ns("2026-11-26T02:00:01.5+01:00") == base + 500_000_000
    with pytest.raises(ValueError):
        parse_rfc3339_ns("yesterday")


def test_parse_cri_line() -> None:
    record = parse_cri_line(b"2026-11-26T01:00:00.1Z stderr P a b  c")
    assert (record.timestamp, record.stream, record.partial, record.text) == \
        ("2026-11-26T01:00:00.1Z", "stderr", True, b"a b  c")
    assert parse_cri_line(b"2026-11-26T01:00:00Z stdout F").text == b""
    for bad in (b"garbage", b"2026-11-26T01:00:00Z stdin F x", b"2026-11-26T01:00:00Z stdout X x"):
        with pytest.raises(ValueError):
            parse_cri_line(bad)


def render(options: LogOptions, lines: list[bytes] = LINES) -> bytes:
    formatter = LogFormatter(options)
    return b"".join(formatter.format(parse_cri_line(line)) for line in lines)


def test_format_joins_partial_lines_and_prefixes_timestamps_once() -> None:
    assert render(LogOptions()) == b"one\ntwo\nthree\n\n"
    assert render(LogOptions(timestamps=True)) == (
        b"2026-11-26T01:00:00.1Z one\n2026-11-26T01:00:01.000000002Z two\n"
        b"2026-11-26T01:00:02Z three\n2026-11-26T01:00:03Z \n")


def test_format_since_and_limit_bytes() -> None:
    since = parse_rfc3339_ns("2026-11-26T01:00:01Z")
    assert render(LogOptions(since_ns=since)) == b"two\nthree\n\n"
    formatter = LogFormatter(LogOptions(limit_bytes=6))
    assert formatter.format(parse_cri_line(LINES[0])) == b"one\n"
    assert formatter.format(parse_cri_line(LINES[1])) == b"tw"
    assert formatter.exhausted and formatter.format(parse_cri_line(LINES[2])) == b""


@pytest.mark.parametrize("lines,wanted", [(0, b""), (1, b"e\n"), (2, b"d\ne\n"), (5, b"a\nb\nc\nd\ne\n"),
                                          (9, b"a\nb\nc\nd\ne\n")])
def test_tail_start(lines: int, wanted: bytes) -> None:
    data = io.BytesIO(b"a\nb\nc\nd\ne\n")
    data.seek(tail_start(data, lines))
    assert data.read() == wanted


def test_tail_start_across_blocks() -> None:
    body = b"".join(b"%05d\n" % i for i in range(5000))
    data = io.BytesIO(body)
    data.seek(tail_start(data, 1234))
    assert data.read() == b"".join(b"%05d\n" % i for i in range(5000 - 1234, 5000))


def test_parse_log_query() -> None:
    options = parse_log_query({"follow": "true", "tailLines": "10", "timestamps": "1", "limitBytes": "5",
                               "sinceSeconds": "3"}, NOW)
    assert options == LogOptions(follow=True, previous=False, timestamps=True, tail_lines=10, limit_bytes=5,
                                 since_ns=NOW - 3_000_000_000)
    assert parse_log_query({"previous": "true", "sinceTime": "2026-11-26T01:00:01Z"}, NOW).since_ns == \
        parse_rfc3339_ns("2026-11-26T01:00:01Z")
    assert parse_log_query({}, NOW) == LogOptions()
    for bad in ({"tailLines": "-1"}, {"tailLines": "x"}, {"limitBytes": "0"}, {"sinceSeconds": "0"},
                {"follow": "maybe"}, {"sinceSeconds": "1", "sinceTime": "2026-11-26T01:00:01Z"},
                {"sinceTime": "soon"}):
        with pytest.raises(LogOptionsError):
            parse_log_query(bad, NOW)


def pod(state: dict, last: dict | None = None, container_id: str = "containerd://new") -> dict:
    status = {"name": "c", "state": state, "lastState": last or {}, "containerID": container_id}
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "initContainers": [{"name": "i"}]},
            "status": {"containerStatuses": [status]}}


def test_log_container_id_follows_kubelet() -> None:
    old = {"terminated": {"exitCode": 1, "containerID": "containerd://old"}}
    assert log_container_id(pod({"running": {}}), "c", previous=False) == "new"
    assert log_container_id(pod({"running": {}}, old), "c", previous=True) == "old"
    assert log_container_id(pod({"waiting": {"reason": "CrashLoopBackOff"}}, old), "c", previous=False) == "old"
    assert log_container_id(pod({"terminated": {"containerID": "containerd://t"}}), "c", previous=False) == "t"
    cases = [
        (pod({"running": {}}), True, 'previous terminated container "c" in pod "p" not found'),
        (pod({"waiting": {"reason": "ContainerCreating"}}), False,
         'container "c" in pod "p" is waiting to start: ContainerCreating'),
        (pod({"waiting": {"reason": "ErrImagePull"}}), False,
         'container "c" in pod "p" is waiting to start: image can\'t be pulled'),
        (pod({"terminated": {}}), False, 'container "c" in pod "p" is terminated'),
        ({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}, "status": {}}, False,
         'container "c" in pod "p" is not available'),
    ]
    for subject, previous, message in cases:
        with pytest.raises(ContainerLookupError, match="^" + message.replace("(", r"\(") + "$"):
            log_container_id(subject, "c", previous)


def test_running_container_id_and_has_container() -> None:
    assert running_container_id(pod({"running": {}}), "c") == "new"
    with pytest.raises(ContainerLookupError) as error:
        running_container_id(pod({"waiting": {"reason": "x"}}), "c")
    assert error.value.http_status == 404
    assert has_container(pod({}), "i") and not has_container(pod({}), "x")


def test_without_follow_lines_written_during_the_read_are_not_sent(tmp_path) -> None:
    """--tail=N of a log that a container keeps writing gives N lines: the log as it was when asked."""
    import asyncio
    from agent.node_server import log_reader
    from agent.node_server.cri_log import LogOptions

    path = tmp_path / "0.log"
    path.write_bytes(b"".join(b"2026-01-01T00:00:00.%09dZ stdout F line %d\n" % (i, i) for i in range(10)))
    sent: list[bytes] = []

    async def write(data: bytes) -> None:
        sent.append(data)
        with open(path, "ab") as log:  # the container goes on writing while the lines are sent
            log.write(b"2026-01-01T00:00:01.000000000Z stdout F later\n")

    async def running() -> bool:
        return True

    asyncio.run(log_reader.stream_log(str(path), LogOptions(tail_lines=3), write, running))
    assert b"".join(sent) == b"line 7\nline 8\nline 9\n"
