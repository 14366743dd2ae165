"""The project's own tests: its model's behaviour, its steps and its data contract."""
