"""Development tools, not shipped in the wheel: the fake Messages API and the benchmark.

They live beside `coursegen` in `src/`, so a checkout (the editable install puts `src/`
on the path) imports them, while `pip install coursegen` gets only the service.
"""
