"""The Jupyter Server kernel API on our locked-down pool, for JupyterLab (gateway mode), VS Code and nbclient.

A Jupyter kernel is a ``KernelSession`` of the kernel pool, like a card session: sandboxed, bound
to the user who started it, under the same time, memory and output limits. ``wire`` encodes kernel
messages for the websocket (v1 and legacy), ``kernel`` relays one kernel's channels and enforces the
limits on the code that passes through, ``manager`` and ``sessions`` keep each user's kernels and
sessions, ``specs`` describes the one kernel spec, ``handlers`` and ``channels`` are the REST routes
and the websocket (listed in ``routes``).
"""
