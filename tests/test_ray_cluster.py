"""A sweep on a two-node Ray cluster on this machine (Ray's own multi-node test helper, one CPU
per node, started and stopped here): joined by address, its trials run on both nodes, and
everything they keep lands in the driver's output folder."""

import json

from _cli import quick_config

from tinykd.experiments.sweep import parse_grid, run_sweep
from tinykd.trials import RayOptions


def test_sweep_on_a_two_node_cluster_uses_both_nodes(tmp_path, mnist_dir):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        nodes = {n.node_id for n in cluster.list_all_nodes()}
        assert len(nodes) == 2
        config = quick_config(mnist_dir)
        out = tmp_path / "sweep"
        # Two points, one CPU each, one CPU per node: they can only run one on each node.
        grid = parse_grid("1,4", "0.9", "mlp-16", "hinton")
        result = run_sweep(
            config, out, grid, int8=False, baselines=False, ray=RayOptions(address=cluster.address), log=print
        )
    finally:
        cluster.shutdown()
    assert result.trained == 2
    ran_on = [json.loads((out / "points" / f"{p['key']}.json").read_text())["ran_on"]["node"] for p in result.points]
    assert set(ran_on) == nodes
    summary = json.loads((out / "sweep.json").read_text())
    assert [p["key"] for p in summary["points"]] == ["mlp-16__hinton__T1__a0.9", "mlp-16__hinton__T4__a0.9"]
    assert all(0 <= p["test_errors"] < p["test_total"] == 500 for p in summary["points"])
