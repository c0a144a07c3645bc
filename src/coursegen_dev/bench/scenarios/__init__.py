"""One module per figure of issue 5; each `run` returns an Outcome."""
