"""The placement and utilisation policy the server and the scaling bench share."""

from server.execution.placement import AgentLoad, ranked, utilisation


def test_a_single_tenant_agent_takes_only_the_user_it_holds():
    held = AgentLoad(in_use=1, capacity=4, single_tenant=True, tenant="alice")
    assert held.accepts("alice") and not held.accepts("bob")
    assert AgentLoad(capacity=4, single_tenant=True).accepts("bob")


def test_full_and_draining_agents_take_nobody():
    assert not AgentLoad(in_use=8, capacity=8).accepts("alice")
    assert not AgentLoad(draining=True).accepts("alice")


def test_ranking_keeps_a_users_kernels_together_then_prefers_warm_then_least_loaded():
    loads = {
        "empty-cold": AgentLoad(capacity=4, single_tenant=True),
        "alices": AgentLoad(in_use=2, capacity=4, single_tenant=True, tenant="alice"),
        "bobs": AgentLoad(in_use=1, capacity=4, single_tenant=True, tenant="bob"),
        "empty-warm": AgentLoad(capacity=4, ready=2, single_tenant=True),
    }
    assert ranked(loads, "alice") == ["alices", "empty-warm", "empty-cold"]
    assert ranked(loads, "carol") == ["empty-warm", "empty-cold"]
    shared = {"busy": AgentLoad(in_use=6, ready=1), "quiet": AgentLoad(in_use=1, ready=1),
              "cold": AgentLoad(in_use=0, ready=0)}
    assert ranked(shared, "alice") == ["quiet", "busy", "cold"]


def test_utilisation_counts_a_held_single_tenant_agent_as_full_and_ignores_draining_ones():
    loads = {"a": AgentLoad(in_use=1, capacity=4, single_tenant=True, tenant="alice"),
             "b": AgentLoad(capacity=4, single_tenant=True),
             "c": AgentLoad(in_use=4, capacity=4, draining=True)}
    assert utilisation(loads) == 50.0
    assert utilisation({"m": AgentLoad(in_use=2, capacity=8)}) == 25.0
    assert utilisation({}) == 100.0


def test_a_load_counts_the_kernel_just_placed():
    load = AgentLoad(capacity=2, ready=1, single_tenant=True).with_kernel("alice")
    assert (load.in_use, load.ready, load.tenant) == (1, 0, "alice")
    assert not load.accepts("bob")


def test_load_from_an_agents_health():
    health = {"status": "ok", "pool": {"ready": 2, "size": 2}, "tenancy": "single", "capacity": 4,
              "in_use": 1, "tenant": "t1", "draining": False}
    assert AgentLoad.from_health(health) == AgentLoad(1, 4, 2, True, "t1", False)
