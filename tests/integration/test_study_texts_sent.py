"""The study's configured texts are what participants get: STUDY_NAME, GREETING_TEXT and CONSENT_EXPLANATION
go from the conversation function's settings through the composition root to the texts sent."""

from __future__ import annotations

import pytest

from tests.support.conversation import harness

OPT_OUT_LINE = "Reply STOP to opt out, HELP for help."


@pytest.mark.parametrize("kind", ["dynamodb", "memory"])
def test_the_configured_greeting_and_consent_explanation_are_sent(kind: str) -> None:
    # Given a study with its own name, greeting and consent explanation
    texts = {
        "study_name": "the Move More study",
        "greeting_text": f"Welcome {{name}} to {{study}}! Will you take part? YES or NO. {OPT_OUT_LINE}",
        "consent_explanation": "{study} texts you one tiny habit a day. Reply YES or NO.",
    }
    with harness(kind, **texts) as h:
        # When a participant is enrolled, then the first message is the study's, by first name
        participant = h.enroll(name="Grace Hopper")
        assert h.sms.bodies_to(participant.phone_number) == [
            f"Welcome Grace to the Move More study! Will you take part? YES or NO. {OPT_OUT_LINE}"
        ]
        # And an answer that is neither yes nor no gets the study's explanation
        assert h.text(participant, "what is this?") == [
            "the Move More study texts you one tiny habit a day. Reply YES or NO."
        ]
