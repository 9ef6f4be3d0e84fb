"""``python -m kernels``: the executor agent, as ``bi executor`` (the executor image has no server package)."""

from kernels.agent_app import ExecutorApp

if __name__ == "__main__":
    ExecutorApp.launch_instance()
