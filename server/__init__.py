"""The BI platform's API server: HTTP and websocket handlers, auth, storage and services.

Kernels never import this package (see ``tests/test_codebase.py``).
"""
