"""`inferneo-bench run --target URL`: the workload replayed open-loop, streaming, against any OpenAI-compatible
server (vLLM, SGLang, `inferneo-bench serve`), recorded in the same per-request records as an in-process run.
Protocol details and what is counted: docs/serving.md.
"""
