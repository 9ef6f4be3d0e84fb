"""The executor side: the sandbox launcher, the locked-down kernel and the executor agent.

Never imports ``server`` (checked by ``tests/test_codebase.py``): kernels hold nothing worth stealing.
"""
