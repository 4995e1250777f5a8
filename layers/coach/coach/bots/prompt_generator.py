"""The prompt generator: a personalised 1-minute habit in Fogg's B = MAP form.

"After {anchor}, try {action} — it helps you {motivation}." The anchor is the Prompt, the 1-minute
action keeps Ability high, and the person's own reason is the Motivation.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from coach.bots.turn import TurnContext
from coach.domain.intensity import sized
from coach.domain.profile import PROMPT_FIELDS, UserProfile
from coach.domain.sms_text import read_prefix

REQUIRED_FIELDS = PROMPT_FIELDS
TRY_IT = "Let me know when you've tried it!"

HEALTHY_EATING = "healthy eating"
PHYSICAL_ACTIVITY = "physical activity"
MENTAL_WELL_BEING = "mental well-being"
LESS_SCREEN_TIME = "less screen time"
DOMAINS = (HEALTHY_EATING, PHYSICAL_ACTIVITY, MENTAL_WELL_BEING, LESS_SCREEN_TIME)

_DOMAIN_WORDS = {
    HEALTHY_EATING: r"eat\w*|food|diet|fruits?|veg\w*|snack\w*|sugar\w*|water|hydrat\w*|cook\w*|meals?|nutrition|"
    r"breakfast|healthier food",
    PHYSICAL_ACTIVITY: r"exercis\w*|mov(?:e|ing)|movement|walk\w*|run(?:ning)?|stretch\w*|fitness|fit|active|"
    r"activity|workouts?|gym|yoga|steps|squats?|physical|sport\w*|push-?ups?",
    MENTAL_WELL_BEING: r"stress\w*|anxi\w*|calm\w*|meditat\w*|mindful\w*|breath\w*|mental|gratitude|grateful|"
    r"journal\w*|relax\w*|mood|well-?being|wellness|happier|happy",
    LESS_SCREEN_TIME: r"screens?|phone|scroll\w*|social media|instagram|tiktok|tv|netflix|youtube|"
    r"doomscroll\w*|online|internet",
}
_ACTIONS = {
    HEALTHY_EATING: (
        "drinking a full glass of water",
        "adding one piece of fruit or veg to your plate",
        "swapping one sugary drink for water",
        "taking three slow, mindful bites",
    ),
    PHYSICAL_ACTIVITY: (
        "10 slow squats",
        "a brisk 1-minute walk",
        "stretching your arms and back for 60 seconds",
        "5 wall push-ups",
        "marching on the spot for a minute",
    ),
    MENTAL_WELL_BEING: (
        "5 slow, deep breaths",
        "writing down one thing you're grateful for",
        "sitting quietly for 60 seconds, noticing your breath",
        "naming 3 things you can see, hear and feel",
    ),
    LESS_SCREEN_TIME: (
        "putting your phone in another room for a minute",
        "turning your phone face down and taking 3 breaths",
        "switching off one notification you don't need",
        "looking out of a window for 60 seconds instead of scrolling",
    ),
}
_VERB_START = re.compile(
    r"^(?:feel|be|get|have|sleep|stay|reduce|lose|manage|keep|become|focus|think|live|look|play|spend|save|"
    r"worry|stress|move|enjoy|sleep|eat|breathe|cope|handle|build|start|stop|avoid|improve|care|show|see|"
    r"relax|calm|wake|lower|gain|boost|increase|work|run|walk)\b",
    re.IGNORECASE,
)
_REASON_LEAD = re.compile(
    r"^(?:because|so that you can|so that|so you can|so|to|you want to|you'd like to|you need to)\s+", re.IGNORECASE
)
_DOMAIN_PATTERNS = {domain: re.compile(rf"\b(?:{words})\b") for domain, words in _DOMAIN_WORDS.items()}
_EASIER = re.compile(r"\b(?:easier|smaller|simpler|shorter)\b", re.IGNORECASE)
_PRONOUNS = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "i'm": "you're",
    "im": "you're",
    "i've": "you've",
    "i'll": "you'll",
    "i'd": "you'd",
    "am": "are",
    "we": "you",
    "our": "your",
    "us": "you",
}


@dataclass(frozen=True)
class HabitPrompt:
    text: str
    action: str


@dataclass(frozen=True)
class MissingFields:
    """The profile cannot carry a prompt yet: intake must ask for these first."""

    fields: tuple[str, ...]


def canonical_domain(text: str | None) -> str | None:
    """One of the four study domains a text speaks of, or None (the person's own habit)."""
    if not text:
        return None
    lowered = read_prefix(text).lower()
    for domain in DOMAINS:
        if lowered == domain or _DOMAIN_PATTERNS[domain].search(lowered):
            return domain
    return None


def second_person(text: str) -> str:
    """What the person said of themselves, said back to them: "after my coffee" → "after your coffee"."""
    return re.sub(r"(?<!\w)[A-Za-z']+(?!\w)", lambda m: _PRONOUNS.get(m.group(0).lower(), m.group(0)), text)


def _motivation_clause(motivation: str | None) -> str:
    if not motivation:
        return ""
    reason = second_person(motivation.strip().rstrip(".!"))
    reason = _REASON_LEAD.sub("", reason)
    if not reason:
        return ""
    # "feel calmer" reads well after "it helps you"; "you are moving to Madrid" does not.
    return f" — it helps you {reason}" if _VERB_START.match(reason) else f" — remember why: {reason}"


# Words that name no particular habit: what is left of "I want to drink more water" is "drink", "water".
_NOT_A_GOAL = frozenset(
    {
        *("a", "an", "and", "the", "my", "your", "to", "of", "for", "on", "in", "at", "after", "before", "with"),
        *("i", "i'd", "i'm", "you", "want", "like", "would", "need", "try", "be", "get", "do", "more", "less"),
        *("better", "some", "just", "bit", "lot", "every", "each", "day", "daily", "minute", "1", "one", "it"),
        *("healthy", "healthier", "eating", "eat", "physical", "activity", "mental", "well-being", "wellbeing"),
        *("screen", "time", "habit", "habits", "minutes", "60", "seconds", "second", "then", "when", "is", "are"),
    }
)
_WORD = re.compile(r"[a-z0-9'-]+")


def content_words(text: str) -> set[str]:
    """The words of `text` that say what it is about, crudely stemmed ("stretching" and "stretch" agree)."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _NOT_A_GOAL}


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _actions(profile: UserProfile) -> tuple[str, ...]:
    """The 1-minute habits to offer: the domain's that share the participant's own words ("drink more water":
    the glass of water), else their own words when they named more than a domain, else the domain's."""
    own = second_person((profile.habit_domain or "your habit").strip().rstrip("."))
    own_actions = (f'spending 1 minute on "{own}"', f'the smallest 1-minute step toward "{own}"')
    domain = canonical_domain(profile.habit_domain)
    if domain is None:
        return own_actions
    goal = content_words(read_prefix(profile.habit_domain or ""))
    matching = tuple(a for a in _ACTIONS[domain] if goal & content_words(a))
    if matching:
        return matching
    return own_actions if goal else _ACTIONS[domain]


def generate_habit_prompt(
    profile: UserProfile, rng: random.Random, previous: str | None = None, *, new_habit: bool = False
) -> HabitPrompt | MissingFields:
    """The MAP prompt of the agreed habit (`profile.habit`), or of a new one when there is none yet or
    `new_habit` asks for a change (varied from `previous`); or which required fields are still missing."""
    missing = profile.missing_for_prompt()
    if missing:
        return MissingFields(missing)
    if profile.habit and not new_habit:
        action = profile.habit
    else:
        actions = list(_actions(profile))
        fresh = [a for a in actions if a != profile.habit and (not previous or a not in previous)] or actions
        easier = bool(profile.last_tweak and _EASIER.search(profile.last_tweak))
        action = fresh[0] if easier else rng.choice(fresh)
    anchor = second_person(profile.prompt_anchor or "")
    anchor = anchor[:1].upper() + anchor[1:]
    text = f"{anchor}, try {sized(action, profile.intensity)}{_motivation_clause(profile.motivation)}. {TRY_IT}"
    return HabitPrompt(text=text, action=action)


WRITTEN_BY_LLM = "written by the LLM"  # the action of a prompt the LLM wrote without the tool


def deliver_habit_prompt(ctx: TurnContext, prompt: HabitPrompt, *, occasion: str, written_by: str = "template") -> None:
    """Book-keeping for a prompt that goes out now: the last prompt, the count, a research event; the habit
    it asks for becomes the agreed one, and a change of habit is on record (habit_changed)."""
    ctx.flow.last_habit_prompt = prompt.text
    ctx.profile.total_prompts += 1
    ctx.profile.last_prompt_sent_at = ctx.now
    if prompt.action != WRITTEN_BY_LLM and prompt.action != ctx.profile.habit:
        if ctx.profile.habit is not None:
            ctx.record("habit_changed", before=ctx.profile.habit, after=prompt.action, occasion=occasion)
        ctx.profile.habit = prompt.action
    ctx.record("habit_prompt", occasion=occasion, action=prompt.action, prompt=prompt.text, written_by=written_by)
