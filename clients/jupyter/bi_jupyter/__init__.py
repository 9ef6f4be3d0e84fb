"""Run notebooks on a BI cards server from any client that starts kernels by kernel spec.

``bi-jupyter install --url URL`` writes the kernel spec ``bi``. A client that starts it (papermill ``-k bi``,
nbclient, ``jupyter console --kernel bi``, a local JupyterLab) starts ``bi_jupyter.bridge``: a local
process that serves the kernel's ZeroMQ ports on loopback, starts a kernel on the server with the
personal access token in ``BI_JUPYTER_TOKEN``, and relays each message over the server's kernel websocket.
"""
