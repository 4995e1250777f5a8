"""System prompts of the LLM coach, as text files versioned with the code (read with importlib.resources)."""
