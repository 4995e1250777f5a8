"""SMS Habit Coach: the shared package of every Lambda function (the `coach` layer)."""
