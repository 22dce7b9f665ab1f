"""The director: style presets, prompts, scripts and the storyboard planner."""
