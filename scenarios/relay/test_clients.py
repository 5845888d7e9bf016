"""The ``clients`` group: LiveKit Agents' Deepgram plugin, Pipecat's DeepgramSTTService and the
Deepgram SDK's live client, unchanged, each through the vendor faults (clients_kit.py).

Each scenario records one row (client x fault: recovered or not, words lost against the same
client's clean run, words doubled, reconnect delay, attempts) with the library's documented
behaviour beside it; a difference is a finding recorded in the row, not a failure. The scenario
fails only on the SLO thresholds on ``client_*`` metrics: those of ``--slo`` if it has any, else
the relay suite's slo.toml.
"""

from __future__ import annotations

import json

import pytest
from clients_kit import CLEAN, CLIENTS, FAULT_NAMES, FAULTS, CaseResult, ClientBench, documented
from relay_kit import SCRIPT, WORD_MS

from harness import slo
from harness.checks import relay as relay_checks
from harness.checks.clients import baseline_row, client_row, documented_behaviour, slo_gate
from harness.checks.integrity import transcript_words
from harness.checks.verdict import Status
from harness.paths import shipped_scenarios
from harness.vendorleg import VendorLeg

SUITE_SLO = shipped_scenarios() / "relay" / "slo.toml"


def client_thresholds(slo_path: str | None) -> list[slo.Threshold]:
    for path in ([slo_path] if slo_path else []) + [str(SUITE_SLO)]:
        found = [t for t in slo.load(path).thresholds if t.metric.startswith("client_")]
        if found:
            return found
    return []


@pytest.fixture(scope="session")
def client_bench(relay_env, run_dir, relay_config):
    return ClientBench(relay_env, run_dir.path / "artifacts" / "relay" / "clients", relay_config.vendor_timeout_s)


@pytest.fixture
def selected_clients(request) -> list[str]:
    """The clients of the scenarios selected in this session: run side by side on first use."""
    chosen = {item.callspec.params.get("client") for item in request.session.items if hasattr(item, "callspec")
              and "client_bench" in getattr(item, "fixturenames", ())}
    return [c for c in CLIENTS if c in chosen]


def _record(scenario, result: CaseResult) -> None:
    scenario.add_history(result.history)
    path = scenario.artifact_path("vendor-leg.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(VendorLeg(list(result.conns)).to_dict(), indent=1), encoding="utf-8")
    scenario.artifact("vendor leg", path)
    if result.log_path is not None and result.log_path.exists():
        scenario.artifact(f"{result.client} log", result.log_path)


def _gate(scenario, row, slo_path: str | None) -> None:
    scenario.check(row)
    if row.status is Status.PASS:
        for v in slo_gate(row, client_thresholds(slo_path)):
            scenario.check(v)
    scenario.verify()


@pytest.mark.parametrize("client", CLIENTS)
def test_client_clean_baseline(scenario, client_bench, selected_clients, harness_options, client):
    result = client_bench.get(client, CLEAN, selected_clients)
    _record(scenario, result)
    row = baseline_row(result.history, result.conns, SCRIPT, WORD_MS)
    if result.run.outcome == "driver_error":
        row.status, row.message = Status.UNKNOWN, f"the driver failed: {result.run.detail}"
    row.message = f"{client} x clean: {row.message}"
    row.evidence.update(client=client, fault=CLEAN, documented="every word of the audio, one connection",
                        outcome=result.run.outcome, detail=result.run.detail)
    _gate(scenario, row, harness_options.slo)


@pytest.mark.parametrize(("client", "fault"), [(c, f) for c in CLIENTS for f in FAULT_NAMES],
                         ids=[f"{c}-{f}" for c in CLIENTS for f in FAULT_NAMES])
def test_client_under_vendor_fault(scenario, client_bench, selected_clients, harness_options, relay_config,
                                   client, fault):
    spec = next(f for f in FAULTS if f.name == fault)
    result = client_bench.get(client, fault, selected_clients)
    baseline = client_bench.results[(client, CLEAN + "-silence" if spec.silence else CLEAN)]
    _record(scenario, result)
    h, conns, windows = result.history, result.conns, result.windows
    window = windows[0] if windows else None
    row = client_row(h, conns, window, baseline_words=len(transcript_words(baseline.history)),
                     silences=result.run.silences, windows=windows)
    if result.run.outcome == "driver_error":
        row.status, row.message = Status.UNKNOWN, f"the driver failed: {result.run.detail}"
    # the relay check that fits the fault, for its own measurements (shown with the row, not gating)
    if spec.silence:
        check = relay_checks.keepalive_in_silence(h, conns, result.run.silences, relay_config.vendor_timeout_s)
    elif window is not None and window.kind == "refuse_handshake":
        check = relay_checks.handshake_backoff(h, conns, connect_within_s=30.0)
        if "attempts_per_s" in check.metrics:
            row.metrics["client_attempts_per_s"] = check.metrics["attempts_per_s"]
    elif window is not None:
        check = relay_checks.fault_recovery(h, conns, window, SCRIPT, relay_config.reconnect_within_s, WORD_MS)
    else:
        check = None
    expected = spec.expect(documented(client))
    doc = documented_behaviour(row, expected)
    row.metrics["client_findings"] = doc.metrics.get("client_findings")
    findings = doc.evidence.get("findings", [])
    row.message = f"{client} x {fault}: {row.message}" + (f"; FINDING: {'; '.join(findings)}" if findings else "")
    row.evidence.update(client=client, fault=fault, documented=expected.describe(),
                        source=documented(client).source, findings=findings, outcome=result.run.outcome,
                        detail=result.run.detail, documented_behaviour=doc.to_dict(),
                        relay_check=check.to_dict() if check is not None else None)
    _gate(scenario, row, harness_options.slo)
