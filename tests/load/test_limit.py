"""Capacity as a share of the physical limit cores / RTF: the arithmetic and the sentence."""

from __future__ import annotations

import pytest

from harness.load.limit import LimitError, PhysicalLimit, capacity_figures, capacity_sentence, parse_rtf_line


def test_limit_is_cores_over_rtf_and_share_is_users_over_limit():
    limit = PhysicalLimit(cores=2, rtf=0.41)
    assert limit.streams == pytest.approx(4.878, abs=1e-3)
    assert limit.share(4) == pytest.approx(0.82, abs=1e-3)
    assert limit.share(None) is None
    assert PhysicalLimit(cores=4, rtf=0.41).share(4) == pytest.approx(0.41, abs=1e-3)  # more cores: smaller share


def test_sentence_states_capacity_as_a_ratio_of_the_limit():
    text = capacity_sentence(4, 500, PhysicalLimit(cores=2, rtf=0.41, rtf_wall=0.52, load_avg=3.1))
    assert text == ("4 streams at final p95 < 500 ms = 82 % of the 4.9-stream limit (2 cores / RTF 0.41); "
                    "wall RTF 0.52, so 3.8 streams were the limit this machine left at the time (104 % of that), "
                    "load average 3.10")
    assert capacity_sentence(1, 500, PhysicalLimit(2, 0.5)) == \
        "1 stream at final p95 < 500 ms = 25 % of the 4.0-stream limit (2 cores / RTF 0.50)"


def test_sentence_without_a_limit_says_why_there_is_no_ratio():
    text = capacity_sentence(120, 500, None)
    assert text.startswith("120 streams at final p95 < 500 ms (no physical limit")
    assert "%" not in text


def test_figures_for_the_run_directory():
    figs = capacity_figures(4, PhysicalLimit(cores=2, rtf=0.41))
    assert figs["share_of_limit"] == 0.82
    assert figs["limit"]["limit_streams"] == 4.88 and figs["limit"]["cores"] == 2
    assert figs["limit"]["limit_streams_now"] is None
    assert capacity_figures(4, PhysicalLimit(2, 0.41, rtf_wall=1.0))["limit"]["limit_streams_now"] == 2.0
    assert capacity_figures(None, PhysicalLimit(2, 0.41))["share_of_limit"] == 0.0
    assert capacity_figures(3, None) == {"limit": None, "share_of_limit": None}


@pytest.mark.parametrize("bad", [dict(cores=0, rtf=0.4), dict(cores=2, rtf=0.0), dict(cores=2, rtf=-1.0)])
def test_a_limit_needs_cores_and_a_positive_rtf(bad):
    with pytest.raises(ValueError):
        PhysicalLimit(**bad)


def test_rtf_line_parsing():
    limit = parse_rtf_line('loading\n{"rtf_wall": 0.52, "rtf_cpu": 0.41, "audio_s": 5.2}\n', 2, 1.234)
    assert (limit.rtf, limit.rtf_wall, limit.cores, limit.load_avg) == (0.41, 0.52, 2, 1.23)
    with pytest.raises(LimitError, match="no JSON line"):
        parse_rtf_line("Traceback ...", 2, None)
    with pytest.raises(LimitError, match="rtf_cpu"):
        parse_rtf_line('{"rtf_wall": 0.5}', 2, None)
