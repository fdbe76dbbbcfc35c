"""The device farm: evaluation streamed over Ray actors, each owning a QEMU instance (or a board)
on its node, on a two-node Ray cluster started on this machine (Ray's own test helper, one CPU per
node, so the two QEMU actors can only run one on each node)."""

import numpy as np
import pytest

from tinykd.device.evaluate import compare_with_host, random_inputs, run_on_device
from tinykd.errors import TinykdError
from tinykd.evaluate import outputs_tflm
from tinykd.firmware.build import build_firmware
from tinykd.trials import RayOptions

BOARD = "mps2-an386"


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def test_farm_on_two_nodes_gives_the_outputs_of_one_instance(quick_build, two_nodes, tmp_path):
    tflite = quick_build.out / "model_int8.tflite"
    fw = build_firmware(tflite, BOARD, tmp_path / "fw")
    n = 30
    x = random_inputs(n, fw.sources.input_bytes, seed=5)
    sha = fw.sources.sha256
    one = run_on_device(BOARD, fw.build.elf, x, expected_sha256=sha, instances=1, progress=False)

    partial = tmp_path / "device_partial.npz"
    farm = RayOptions(address=two_nodes.address)
    run = run_on_device(BOARD, fw.build.elf, x, expected_sha256=sha, instances=2, partial=partial, farm=farm)
    assert run.where == "Ray device farm: QEMU mps2-an386 x2 on 2 node(s)"
    # Shards merged in input order: the same bytes and counts as one local instance, and as TFLite Micro.
    assert np.array_equal(run.outputs, one.outputs) and np.array_equal(run.counts, one.counts)
    host = outputs_tflm(tflite, x.reshape(n, *fw.sources.input_shape[1:])).reshape(n, -1)
    assert compare_with_host(run.outputs, host)["mismatches"] == 0
    assert run.link["streamed"] == n and run.link["resumed"] == 0

    # Per-sample resume is the local run's: the verified results are kept, nothing is streamed again.
    again = run_on_device(BOARD, fw.build.elf, x, expected_sha256=sha, instances=2, partial=partial, farm=farm)
    assert again.link["resumed"] == n and again.link["streamed"] == 0
    assert np.array_equal(again.outputs, one.outputs)


def test_farm_of_real_boards_says_when_no_node_has_one(two_nodes, tmp_path):
    x = np.zeros((2, 784), dtype=np.int8)
    with pytest.raises(TinykdError, match=r"No nano33 is plugged into any of the cluster's 2 nodes"):
        run_on_device("nano33", None, x, expected_sha256="00" * 32, farm=RayOptions(address=two_nodes.address))


def test_farm_refuses_a_port(tmp_path):
    with pytest.raises(TinykdError, match="give --port or the farm options, not both"):
        run_on_device(
            BOARD, None, np.zeros((1, 4), np.int8), expected_sha256="00" * 32, port="/dev/ttyACM0", farm=RayOptions()
        )
