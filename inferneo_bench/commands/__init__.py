"""One module per command (group). Each exposes `register(app)`; keep imports of torch inside functions so
that `inferneo-bench --help` stays fast."""
