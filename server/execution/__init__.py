"""Running card code: executor agents (local or remote), kernel sessions bound to one user, limits.

``agent_client`` talks to an agent's HTTP API with short-lived EdDSA tokens; ``local_agent`` starts
one beside the server in embedded mode; ``session`` runs code in one session's kernel under the
runbook's limits; ``pool`` hands out sessions, follows kernel deaths and reaps idle sessions.
"""
