"""Texts the study sends whatever the coach says, with their defaults and the check each configured one
passes at start-up (a deploy with a text that would be cut short or cost more than its segments fails with
what to fix, instead of a participant in crisis getting half a sentence, or a first message without its
opt-out line).

US carriers expect the first message to name the program and say how to opt out, so the greeting names
the study and ends "Reply STOP to opt out, HELP for help". A text may name the study as {study} (the
STUDY_NAME setting); the greeting may also greet the participant by first name, {name}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coach.domain.sms_text import Encoding, count_segments, normalise

STUDY_TEXT_SEGMENTS = 2  # the coach's own segment budget: a study text goes out whole within it
LONGEST_FIRST_NAME = 30  # a greeting must still fit with a first name this long
LONGEST_STUDY_NAME = 60

DEFAULT_STUDY_NAME = "the SMS Habit Coach study"
# The first message, sent at enrollment (and after a reset before consent): it carries the consent question.
DEFAULT_GREETING = (
    "Hi {name}! I'm your habit coach for {study}. Over the next few weeks I'll help you build one tiny daily "
    "habit, by text. Ready to start? Reply YES or NO. Reply STOP to opt out, HELP for help."
)
# The answer to a reply to the greeting that is neither yes nor no: consent is never assumed.
DEFAULT_CONSENT_EXPLANATION = (
    "Sorry, I didn't catch that. In {study} I text you one tiny daily habit idea for a few weeks. "
    "Reply YES to start or NO if you'd rather not take part."
)
DEFAULT_HELP_TEXT = (
    "You're texting {study}, a research study that sends one tiny daily habit idea by text. Reply STOP to "
    "opt out, START to rejoin. Msg & data rates may apply. Questions? Contact the study team."
)
# To a number that is not enrolled, at most once a day.
DEFAULT_NOT_ENROLLED_TEXT = (
    "Hi! This number belongs to {study}, a research study, and your number is not enrolled in it. If you "
    "think it should be, please contact the study team. Reply STOP to opt out."
)
# Sent, unchanged, to a text that screens as a safety concern (coach.domain.safety), in place of any coaching.
DEFAULT_CRISIS_TEXT = (
    "I'm concerned about what you wrote. If you might hurt yourself or are in danger, please call or text 988 "
    "(Suicide & Crisis Lifeline) now, or call 911 for an emergency. You are not alone. Someone from the study "
    "team will also check in with you."
)
# The opt-out confirmation has no default of ours: Twilio answers STOP itself and blocks the number before
# the webhook's reply could go out, so a reply of ours would be recorded as sent and never arrive.

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NO_NAME = re.compile(r" ?\{name\}")  # "Hi {name}!" without a name is "Hi!"


def checked_study_text(name: str, text: str, segments: int = STUDY_TEXT_SEGMENTS) -> str:
    """`text` when it goes out whole in `segments` SMS segments as the coach shapes texts; else a ValueError
    naming the setting, its length and what to do."""
    shaped = normalise(text, emojis_allowed=True).strip()
    if not shaped:
        raise ValueError(f"{name} is empty: give the text to send")
    count = count_segments(shaped)
    if count.segments > segments:
        raise ValueError(
            f"{name} takes {count.segments} SMS segments ({count.units} {count.encoding.value} units); "
            f"shorten it to {segments} segments"
            + (" or drop the characters GSM-7 lacks (they make it UCS-2)" if count.encoding is Encoding.UCS2 else "")
        )
    return shaped


def checked_study_name(name: str) -> str:
    """STUDY_NAME as the texts will say it: short, and free of braces (it fills the {study} placeholders)."""
    study = " ".join(name.split())
    if not study:
        raise ValueError("STUDY_NAME is empty: give the name the texts call the study by")
    if len(study) > LONGEST_STUDY_NAME:
        raise ValueError(f"STUDY_NAME has {len(study)} characters; shorten it to {LONGEST_STUDY_NAME}")
    if "{" in study or "}" in study:
        raise ValueError("STUDY_NAME has a brace; the name is used as it is, so leave them out")
    return study


def checked_text_of_study(name: str, text: str, study: str) -> str:
    """A study text with {study} filled in, checked to go out whole (see `checked_study_text`)."""
    return checked_study_text(name, _filled_in(name, text, study, keep=()))


def checked_greeting(name: str, text: str, study: str) -> str:
    """The greeting with {study} filled in and {name} kept for each participant: it names the study, says
    STOP and HELP, and goes out whole even with a LONGEST_FIRST_NAME-character first name."""
    template = checked_study_text(name, _filled_in(name, text, study, keep=("name",)))
    says_keywords = "STOP" in template and "HELP" in template
    if not says_keywords or study.casefold() not in template.casefold():
        raise ValueError(
            f"{name} must name the study ({{study}}) and say how to opt out and get help, e.g. "
            "'Reply STOP to opt out, HELP for help'"
        )
    longest = _greeted(template, "N" * LONGEST_FIRST_NAME)
    checked_study_text(f"{name} with a {LONGEST_FIRST_NAME}-character first name", longest)
    return template


@dataclass(frozen=True)
class ConsentTexts:
    """What the coach says to ask for consent, as the study configured them: checked at start-up, {study}
    filled in (ConversationSettings.consent_texts)."""

    greeting: str  # may hold {name}
    explanation: str

    def greeting_to(self, first_name: str | None) -> str:
        """The greeting, by first name unless there is none or it would not fit: a non-GSM-7 or very long name
        could push the text past its segments, and shaping would cut the opt-out sentence at its end first."""
        greeted = _greeted(self.greeting, first_name)
        if first_name and count_segments(normalise(greeted, emojis_allowed=True)).segments > STUDY_TEXT_SEGMENTS:
            return _greeted(self.greeting, None)
        return greeted


def _filled_in(name: str, text: str, study: str, *, keep: tuple[str, ...]) -> str:
    """`text` with {study} replaced by the study's name and the placeholders in `keep` left as they are; a
    ValueError naming the setting for any other placeholder or brace (a typo would otherwise be sent)."""
    allowed = (*keep, "study")
    unknown = [f"{{{found}}}" for found in _PLACEHOLDER.findall(text) if found not in allowed]
    stray = _PLACEHOLDER.sub("", text)
    if unknown or "{" in stray or "}" in stray:
        shown = ", ".join(unknown) or "a brace outside a placeholder"
        named = " and ".join(f"{{{placeholder}}}" for placeholder in allowed)
        raise ValueError(f"{name} uses {shown}; the only placeholders it may use are {named}")
    return text.replace("{study}", study)


def _greeted(template: str, first_name: str | None) -> str:
    return template.replace("{name}", first_name) if first_name else _NO_NAME.sub("", template)


DEFAULT_CONSENT_TEXTS = ConsentTexts(
    greeting=checked_greeting("GREETING_TEXT", DEFAULT_GREETING, DEFAULT_STUDY_NAME),
    explanation=checked_text_of_study("CONSENT_EXPLANATION", DEFAULT_CONSENT_EXPLANATION, DEFAULT_STUDY_NAME),
)
