"""The OS sandbox of a kernel process: one module per layer, composed by ``sandbox.enter``.

Layers (outermost first): a memory + pids cgroup (``cgroups``), new namespaces
(``namespaces``), a private read-only mount view (``mounts``), resource limits (``rlimits``),
an allowlisted environment (``environment``), a distinct unprivileged uid and
``PR_SET_NO_NEW_PRIVS`` (``privileges``, ids from ``uids``), Landlock (``landlock``) and a
seccomp filter (``seccomp_filter``). Each can be applied alone; ``probe()`` says which this
machine supports. Every layer raises ``SandboxError`` naming itself when it cannot be applied.
"""

from kernels.sandbox.errors import SandboxError
from kernels.sandbox.sandbox import (
    LAYERS,
    SandboxConfig,
    enter,
    probe,
    seal,
    unavailable,
)
from kernels.sandbox.uids import UidAllocator

__all__ = ["LAYERS", "SandboxConfig", "SandboxError", "UidAllocator", "enter", "probe", "seal", "unavailable"]
