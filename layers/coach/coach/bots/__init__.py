"""The conversation engine: orchestrator, intake, prompt generator, feedback tracker, tools, coaches.

Entry: `coach.bots.engine.run_turn`.
"""
