"""The pipeline steps on realistic transcripts (meeting, dictation, support call) and on nothing."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_server.pipeline.steps import STEPS, PipelineInput, analytics, refinement, summary, tasks


def final(segment_id: int, text: str, start_ms: int, end_ms: int, confidence: float = 0.9) -> dict:
    """A final as the engines produce it: words evenly spread over the segment."""
    words = text.split()
    step = (end_ms - start_ms) // max(1, len(words))
    return {
        "segment_id": segment_id,
        "text": text,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "words": [
            {"word": w, "start_ms": start_ms + i * step, "end_ms": start_ms + (i + 1) * step, "confidence": confidence}
            for i, w in enumerate(words)
        ],
    }


def run_all(inp: PipelineInput) -> dict[str, dict]:
    """What the orchestrator does: each step in order, refinement's output handed to the rest."""
    out = {}
    for name, step in STEPS:
        out[name] = step(inp)
        if name == "refinement":
            inp.refined = out[name]
    return out


MEETING = [
    final(0, "um so like we need to to send the the report to the client by friday", 500, 5200, 0.8),
    final(1, "john can you update the project schedule by the end of the day", 5800, 9000, 0.9),
    final(2, "uh i will call the customer tomorrow morning", 11_000, 13_500, 1.0),
    final(3, "you know the budget is uh a little tight", 14_100, 16_000, 0.7),
    final(4, "do you know when the release is", 16_600, 18_000, 0.9),
    final(5, "i would like to thank everyone for the report", 20_500, 23_000, 0.9),
]

DICTATION = [
    final(0, "the patient is a fifty year old man with a history of high blood pressure", 500, 5000),
    final(1, "blood pressure is normal and the heart rate is seventy", 5600, 8400),
    final(2, "please schedule a follow up visit in two weeks", 9000, 11_000),
    final(3, "the patient should take the blood pressure medicine twice a day", 11_600, 14_500),
]

SUPPORT = [
    final(0, "thank you for calling how can i help you today", 500, 3000),
    final(1, "my account is locked and i cannot log in", 3600, 5600),
    final(2, "can you reset my password please", 6200, 7600),
    final(3, "okay let me check your account", 9000, 10_600),
    final(4, "sarah please make sure the account is unlocked by noon", 11_200, 14_000),
    final(5, "i'll send you an email with the new password", 14_600, 16_500),
]


def test_steps_are_the_four_in_protocol_order() -> None:
    assert [name for name, _ in STEPS] == ["refinement", "analytics", "tasks", "summary"]


# --- refinement -----------------------------------------------------------------------------------


def test_refinement_of_a_meeting() -> None:
    out = refinement(PipelineInput(MEETING, 24_000))
    assert [s["text"] for s in out["segments"]] == [
        "So we need to send the report to the client by Friday.",
        "John, can you update the project schedule by the end of the day?",
        "I will call the customer tomorrow morning.",
        "The budget is a little tight.",
        "Do you know when the release is?",  # "you know" as a verb stays
        "I would like to thank everyone for the report.",  # "like" as a verb stays
    ]
    assert out["text"].startswith("So we need to send the report") and out["text"].endswith("for the report.")
    # um, like, uh, you know (2 words), uh / "to to", "the the"
    assert out["removed"] == {"fillers": 6, "repeats": 2}
    assert [(s["segment_id"], s["start_ms"], s["end_ms"]) for s in out["segments"]][2] == (2, 11_000, 13_500)
    assert [s["segment_ids"] for s in out["segments"]] == [[0], [1], [2], [3], [4], [5]]


def test_refinement_joins_segments_cut_without_a_pause() -> None:
    # The scripted engine cuts a final every five words, back to back; so does max_segment_s.
    words = "um so john can you update the the schedule by friday and i will call the client".split()
    finals = [final(k, " ".join(words[i : i + 5]), i * 300, (i + len(words[i : i + 5])) * 300) for k, i in enumerate(range(0, len(words), 5))]
    finals.append(final(len(finals), "thank you everyone", 6000, 7000))  # after a 0.9 s pause
    out = refinement(PipelineInput(finals, 7500))
    assert [s["text"] for s in out["segments"]] == [
        "So John, can you update the schedule by Friday and I will call the client?",
        "Thank you everyone.",
    ]
    assert [s["segment_ids"] for s in out["segments"]] == [[0, 1, 2, 3], [4]]
    assert (out["segments"][0]["start_ms"], out["segments"][0]["end_ms"]) == (0, 5100)
    assert items(finals) == [
        ("Update the schedule by Friday", "John", "by Friday"),
        ("Call the client", "speaker", None),
    ]


def test_refinement_casing_and_questions() -> None:
    out = refinement(PipelineInput(SUPPORT, 17_000))
    assert [s["text"] for s in out["segments"]] == [
        "Thank you for calling how can I help you today.",
        "My account is locked and I cannot log in.",
        "Can you reset my password please?",
        "Okay let me check your account.",
        "Sarah, please make sure the account is unlocked by noon.",
        "I'll send you an email with the new password.",
    ]


def test_refinement_drops_segments_of_fillers_only_and_keeps_deliberate_repeats() -> None:
    finals = [final(0, "um uh", 0, 800), final(1, "i know that that is wrong", 1400, 3000), final(2, "it was like ten minutes", 3600, 4400)]
    out = refinement(PipelineInput(finals, 5000))
    assert [s["segment_id"] for s in out["segments"]] == [1, 2]
    assert out["text"] == "I know that that is wrong. It was ten minutes."


def test_refinement_accepts_punctuated_engine_text() -> None:
    finals = [{"segment_id": 0, "text": "Hello, world.", "start_ms": 0, "end_ms": 900}]
    assert refinement(PipelineInput(finals, 1000))["text"] == "Hello world."


# --- analytics ------------------------------------------------------------------------------------


def test_analytics_of_a_meeting() -> None:
    out = analytics(PipelineInput(MEETING, 24_000))
    assert out["duration_s"] == 24.0
    assert out["segments"] == 6
    assert out["word_count"] == sum(len(f["words"]) for f in MEETING) == 62
    speech_ms = sum(f["words"][-1]["end_ms"] - f["words"][0]["start_ms"] for f in MEETING)  # word spans
    assert out["speech_s"] == speech_ms / 1000
    assert out["speaking_rate_wpm"] == round(62 / (speech_ms / 60_000), 1)
    # gaps between the last word of one segment and the first of the next: 600 ms ones are not pauses
    gaps = [(g["after_segment_id"], g["start_ms"], g["end_ms"]) for g in out["pauses"]["gaps"]]
    assert gaps == [(1, MEETING[1]["words"][-1]["end_ms"], 11_000), (4, MEETING[4]["words"][-1]["end_ms"], 20_500)]
    assert out["pauses"]["count"] == 2 and out["pauses"]["longest_ms"] == 20_500 - MEETING[4]["words"][-1]["end_ms"]
    expected_conf = sum(len(f["words"]) * f["words"][0]["confidence"] for f in MEETING) / 62
    assert out["mean_confidence"] == pytest.approx(expected_conf, abs=1e-4)


def test_analytics_without_word_lists_counts_text_words() -> None:
    finals = [{"segment_id": 0, "text": "hello there", "start_ms": 0, "end_ms": 1000}]
    out = analytics(PipelineInput(finals, 1000))
    assert out["word_count"] == 2 and out["mean_confidence"] is None and out["speaking_rate_wpm"] == 120.0


# --- tasks ----------------------------------------------------------------------------------------


def items(finals: list[dict], audio_ms: int = 30_000) -> list[tuple]:
    inp = PipelineInput(finals, audio_ms)
    inp.refined = refinement(inp)
    return [(i["text"], i["owner"], i["due"]) for i in tasks(inp)["items"]]


def test_tasks_of_a_meeting() -> None:
    assert items(MEETING) == [
        ("Send the report to the client by Friday", None, "by Friday"),
        ("Update the project schedule by the end of the day", "John", "by the end of the day"),
        ("Call the customer tomorrow morning", "speaker", "tomorrow morning"),
    ]


def test_tasks_of_a_support_call() -> None:
    assert items(SUPPORT) == [
        ("Reset my password", None, None),  # the trailing "please" asks for nothing more
        ("Check your account", "speaker", None),
        ("Make sure the account is unlocked by noon", "Sarah", "by noon"),
        ("Send you an email with the new password", "speaker", None),
    ]


def test_tasks_of_a_dictation() -> None:
    assert items(DICTATION) == [("Schedule a follow up visit in two weeks", None, "in two weeks")]


def test_tasks_split_clauses_and_skip_questions() -> None:
    finals = [
        final(0, "we also need to update the guide but the server is down", 0, 4000),
        final(1, "how can you tell", 4600, 5000),
        final(2, "let's meet next week and i will bring the numbers", 5600, 8000),
    ]
    assert items(finals) == [
        ("Update the guide", None, None),
        ("Meet next week", None, "next week"),
        ("Bring the numbers", "speaker", None),
    ]


def test_tasks_compute_refinement_when_not_given() -> None:
    inp = PipelineInput(MEETING, 24_000)
    assert tasks(inp) == tasks(PipelineInput(MEETING, 24_000, refined=refinement(inp)))


# --- summary --------------------------------------------------------------------------------------


def test_summary_picks_the_central_sentences_in_order() -> None:
    out = summary(PipelineInput(DICTATION, 15_000))
    # Four sentences: one is kept, the one whose words recur most (patient, blood pressure).
    assert out["sentences"] == 1 and out["segment_ids"] == [0]
    assert out["text"] == "The patient is a fifty year old man with a history of high blood pressure."


def test_summary_size_grows_with_the_transcript() -> None:
    many = [final(i, f"item {i} about the budget and the release plan", i * 3000, i * 3000 + 2000) for i in range(12)]
    out = summary(PipelineInput(many, 40_000))
    assert out["sentences"] == 3 and out["segment_ids"] == sorted(out["segment_ids"])
    assert out["text"].count(".") == 3


# --- the empty transcript and bad input -----------------------------------------------------------


def test_every_step_handles_zero_segments() -> None:
    out = run_all(PipelineInput([], 0))
    assert out["refinement"] == {"text": "", "segments": [], "removed": {"fillers": 0, "repeats": 0}}
    assert out["analytics"] == {
        "duration_s": 0.0,
        "speech_s": 0.0,
        "word_count": 0,
        "speaking_rate_wpm": 0.0,
        "pauses": {"count": 0, "longest_ms": 0, "gaps": []},
        "mean_confidence": None,
        "segments": 0,
    }
    assert out["tasks"] == {"items": []}
    assert out["summary"] == {"text": "", "sentences": 0, "segment_ids": []}


def test_silence_with_audio_but_no_speech() -> None:
    out = run_all(PipelineInput([final(0, "um", 0, 600)], 3000))
    assert out["refinement"]["text"] == "" and out["tasks"]["items"] == [] and out["summary"]["text"] == ""
    assert out["analytics"]["duration_s"] == 3.0 and out["analytics"]["word_count"] == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not a dict", "final #0 is a str"),
        ({"segment_id": 7, "start_ms": 0, "end_ms": 1}, "segment_id=7.*neither 'text' nor 'words'"),
        ({"segment_id": 7, "text": "hi", "end_ms": 1}, "segment_id=7.*'start_ms'"),
    ],
)
def test_bad_finals_raise_errors_naming_the_segment(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_all(PipelineInput([bad], 1000))  # type: ignore[list-item]


def test_steps_are_deterministic_and_do_not_mutate_their_input() -> None:
    finals = copy.deepcopy(MEETING + SUPPORT)
    first = run_all(PipelineInput(finals, 40_000))
    second = run_all(PipelineInput(finals, 40_000))
    assert first == second and finals == MEETING + SUPPORT


VOCAB = ["um", "uh", "like", "you", "know", "we", "need", "to", "please", "can", "i", "will", "the", "report",
         "by", "friday", "john", "make", "sure", "let's", "what", "so", "and", "yes", "", "the"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(VOCAB), max_size=14), max_size=6))
def test_any_transcript_runs_every_step(texts: list[list[str]]) -> None:
    finals = [final(i, " ".join(words), i * 1000, i * 1000 + 700) for i, words in enumerate(texts)]
    out = run_all(PipelineInput(finals, len(finals) * 2000))
    for seg in out["refinement"]["segments"]:
        assert seg["text"] and seg["text"][-1] in ".?" and seg["text"][0].isupper()
        assert not {"um", "uh"} & set(seg["text"].lower().rstrip(".?").replace(",", "").split())
    assert all(item["text"] for item in out["tasks"]["items"])
    assert out["summary"]["sentences"] <= min(3, len(out["refinement"]["segments"]))
    covered = [sid for seg in out["refinement"]["segments"] for sid in seg["segment_ids"]]
    assert covered == sorted(covered) and set(covered) <= set(range(len(finals)))
