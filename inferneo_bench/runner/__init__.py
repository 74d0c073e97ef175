"""The replay loop and what a run needs around it (clocks, validity)."""
