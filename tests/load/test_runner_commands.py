"""The Locust command lines ``harness load`` builds (no Locust is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.load.runner import SHAPEFILE, LocustPlan, locust_stats
from harness.load.settings import locust_args
from harness.load.steps import SHAPE_ENV, ramp


def plan(tmp_path: Path, **kw) -> LocustPlan:
    return LocustPlan(host="http://127.0.0.1:8700", out_dir=tmp_path / "load",
                      settings={"harness_api_key": "k", "harness_engine": "scripted"}, **kw)


def flag(cmd: list[str], name: str) -> str | None:
    """The value of ``name`` in ``cmd``, given as ``name value`` or ``name=value``."""
    for i, arg in enumerate(cmd):
        if arg == name:
            return cmd[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


def test_headless_command(tmp_path):
    cmd = plan(tmp_path, users=50, spawn_rate=10, run_time_s=75.4).command()
    assert "--headless" in cmd and flag(cmd, "-u") == "50" and flag(cmd, "-r") == "10" and flag(cmd, "-t") == "75s"
    assert flag(cmd, "--harness-samples-dir") == str(tmp_path / "load" / "samples")
    assert flag(cmd, "--html").endswith("locust.html") and flag(cmd, "--harness-engine") == "scripted"


def test_shape_replaces_users_and_run_time(tmp_path):
    p = plan(tmp_path, users=50, run_time_s=60, shape=ramp(50, 60, 5, 10))
    cmd = p.command()
    assert str(SHAPEFILE) in flag(cmd, "-f") and "-u" not in cmd and "-t" not in cmd
    assert SHAPE_ENV in p.env()
    assert SHAPE_ENV not in plan(tmp_path).env()


def test_master_binds_loopback_and_waits_for_workers(tmp_path):
    cmd = plan(tmp_path, mode="master", expect_workers=2, master_port=19350, run_time_s=60).command()
    assert "--master" in cmd and flag(cmd, "--master-bind-host") == "127.0.0.1"
    assert flag(cmd, "--expect-workers") == "2" and flag(cmd, "--master-bind-port") == "19350"
    assert flag(cmd, "--expect-workers-max-wait") is not None  # never waits forever


def test_worker_takes_everything_from_its_master(tmp_path):
    p = LocustPlan(host="", out_dir=tmp_path, mode="worker", master_host="127.0.0.1", master_port=19350)
    cmd = p.command()
    assert "--worker" in cmd and "--host" not in cmd and "--harness-samples-dir" not in cmd
    assert flag(cmd, "--master-port") == "19350"


def test_web_binds_loopback(tmp_path):
    cmd = plan(tmp_path, mode="web", web_port=19422, users=5).command()
    assert "--headless" not in cmd and flag(cmd, "--web-host") == "127.0.0.1" and flag(cmd, "--web-port") == "19422"


def test_a_setting_that_starts_with_a_dash_stays_one_value():
    # A random API key starts with "-" one time in 64; Locust's parser must not take it for a flag.
    args = locust_args({"harness_api_key": "-x3kQ", "harness_loops": 2, "harness_script": None})
    assert args == ["--harness-api-key=-x3kQ", "--harness-loops=2"]


def test_unknown_setting_is_refused():
    with pytest.raises(KeyError, match="harness_nope"):
        locust_args({"harness_nope": 1})


def test_locust_csv_is_read(tmp_path):
    p = plan(tmp_path)
    p.out_dir.mkdir(parents=True)
    (p.out_dir / "locust_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
        "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
        "WS,final,49,0,5,37.5,0.4,305.6,0.0,2.89,0.0,5,7,9,25,210,210,310,310,310,310,310\n"
        ",Aggregated,110,0,9,39.6,0.4,305.6,0.0,6.49,0.0,9,15,28,48,200,210,220,300,310,310,310\n")
    stats = locust_stats(p)
    assert stats["rows"][0]["name"] == "final" and stats["rows"][0]["p95_ms"] == 210.0
    assert stats["total"]["requests"] == 110
