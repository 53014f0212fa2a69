"""Running candidates on Ray: the cluster, the device pool, the scheduler, the workers.

cluster (joining Ray, discovering nodes and devices), pool (device actors: who is free,
failed, quarantined; build and interleaved re-timing), scheduler (one batch, one Ray call
per candidate), workers (compile tasks and device actors: what runs on Ray's workers),
session (devices for the commands that do not tune), compare (build variants, re-time
them interleaved, verdicts against a reference), memory (what a compile declares to Ray).
May import: build, search, devices, model, pipelines, machine, stats and the foundation.
"""
