"""The processes a run needs: started for real, stopped for real, and clear errors when they can't be."""

from __future__ import annotations

import argparse

import httpx
import pytest

from harness import doctor, serve_cmd
from harness.safety import RemoteTargetError, is_loopback_host, require_loopback
from harness.services import ReferenceServer, ServiceError, ToxiproxyServer


@pytest.fixture(scope="module")
def server():
    with ReferenceServer(engine="scripted") as srv:
        yield srv


def test_reference_server_answers_health_with_its_key(server: ReferenceServer):
    ok = httpx.get(f"{server.url}/health", headers=server.auth_headers(), timeout=5)
    assert ok.status_code == 200 and ok.json()["status"] in ("ok", "degraded")
    refused = httpx.get(f"{server.url}/health", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert refused.status_code == 401


def test_restart_keeps_the_address_and_kill_leaves_no_process(server: ReferenceServer):
    port, first_pid = server.port, server.pid
    server.kill()
    assert not server.is_running()
    server.start()
    assert server.port == port and server.pid != first_pid
    assert httpx.get(f"{server.url}/health", headers=server.auth_headers(), timeout=5).status_code == 200


def test_a_key_that_looks_like_an_option_is_passed_intact():
    with ReferenceServer(engine="scripted", api_key="-starts-with-a-dash") as srv:
        assert httpx.get(f"{srv.url}/health", headers=srv.auth_headers(), timeout=5).status_code == 200


def test_unknown_defect_is_refused_naming_it():
    srv = ReferenceServer(engine="scripted", defects=["no-such-defect"], start_timeout_s=30)
    with pytest.raises(ServiceError) as err:
        srv.start()
    assert "no-such-defect" in str(err.value)
    srv.close()


def test_toxiproxy_server_starts_and_stops():
    with ToxiproxyServer(url="") as toxi:
        assert httpx.get(f"{toxi.url}/version", timeout=5).status_code == 200
        proc = toxi.proc
    assert proc is not None and proc.poll() is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_allowed(host: str):
    assert is_loopback_host(host)


@pytest.mark.parametrize("url", ["http://203.0.113.9:8700", "ws://10.0.0.5/v1/stream", "http://192.168.1.2"])
def test_remote_targets_are_refused_unless_allowed(url: str):
    with pytest.raises(RemoteTargetError, match="--allow-remote"):
        require_loopback(url)
    require_loopback(url, allow_remote=True)


def test_a_target_without_host_is_named():
    with pytest.raises(RemoteTargetError, match="has no host"):
        require_loopback("not a url")


def test_serve_command_carries_defects_and_hooks():
    parser = argparse.ArgumentParser()
    serve_cmd.configure_parser(parser)
    args = parser.parse_args(["--port", "0", "--defect", "no-resume", "--defect", "health-lies", "--test-hooks",
                              "--api-key", "k"])
    cmd = serve_cmd.build_command(args)
    assert cmd[1:3] == ["-m", "reference_server"]
    assert cmd.count("--defect") == 2 and "no-resume" in cmd and "health-lies" in cmd
    assert "--test-hooks" in cmd and "--api-key=k" in cmd


def test_doctor_reports_a_missing_binary_with_its_fix(tmp_path):
    finding = doctor.check_binary("frobnicator", str(tmp_path / "nope"), ["--version"], "apt-get install frob")
    assert not finding.ok and finding.fix == "apt-get install frob"


def test_doctor_finds_the_target_unreachable():
    finding = doctor.check_target("http://127.0.0.1:9", None)
    assert not finding.ok and "unreachable" in finding.detail
