"""Use cases. They depend on coach.ports only, never on an SDK."""
