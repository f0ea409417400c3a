"""The cluster shell: the only door to Kubernetes (``client``), the deploy engine (``deploy``) and what
is deployed (``inventory``: the ``status`` and ``delete`` commands).

Only ``client.py`` imports ``kubernetes``; everything else here speaks in plain dicts and our own
errors. Decisions (verdicts, prune plans, rendered objects) come from the pure core above this folder.
"""
