"""Pure models and rules. Nothing here does I/O or imports an SDK."""
