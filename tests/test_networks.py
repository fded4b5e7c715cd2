"""The networks benchmark: its layer lists against published figures and the models themselves, its sums, a
--quick run's JSON, tables and files, and --threads as a list."""
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package beside tests/
from benchmarks import bench, bench_networks, report_networks  # noqa: E402
from benchmarks.networks import NETWORKS, Network, torchvision_model, traced_layers, without_batch  # noqa: E402
from benchmarks.shapes import Shape  # noqa: E402
from examples.mnist.model import build_seed_cnn  # noqa: E402


def _convnext_tiny_mlp_macs() -> int:
    """ConvNeXt-T's linear layers: each block's MLP (dim -> 4 dim -> dim at every pixel) and the 768 -> 1000 head."""
    stages = ((3, 96, 56), (3, 192, 28), (9, 384, 14), (3, 768, 7))
    return sum(depth * size * size * 2 * dim * 4 * dim for depth, dim, size in stages) + 768 * 1000


# torchvision's published multiply-adds per image at 224 px (the "_ops" of each model's ImageNet weights, the GFLOPS
# column of its model table; they count each multiply-add once), and the multiply-adds of each model's layers that
# are not convolutions (classifiers; ConvNeXt's MLPs), which the lists leave out.
PUBLISHED_GMACS = {
    "resnet18": (1.814, 512 * 1000),
    "resnet50": (4.089, 2048 * 1000),
    "mobilenet_v2": (0.301, 1280 * 1000),
    "efficientnet_b0": (0.386, 1280 * 1000),
    "vgg11": (7.609, 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000),
    "convnext_tiny": (4.456, _convnext_tiny_mlp_macs()),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_each_list_adds_up_to_the_published_multiply_adds(name):
    """The list's convolutions plus the model's other layers make torchvision's published figure, to its rounding
    (three decimals of a GMAC: within 0.0005e9). In the ResNets and VGG-11 a layer missing, doubled or at the
    wrong size moves the sum by more (ResNet-18's smallest convolution, its 1x1 s2 projection 64->128 at 56 px, is
    0.0064e9); the mobile networks' squeeze-and-excitation 1x1s are below it, which the counts and the traced
    models check. The papers' figures (ResNet-18: 1.8 GFLOPs, Table 1) have two digits and would confirm less."""
    published, not_convolutions = PUBLISHED_GMACS[name]
    assert abs(NETWORKS[name].macs_per_image() + not_convolutions - published * 1e9) <= 0.0005e9


def test_convolution_counts_are_the_models():
    """nn.Conv2d modules per model, as torchvision defines them (ResNet-18: 17 in its blocks and stem + 3
    projections; EfficientNet-B0: 16 blocks with SE, 81 in all; ConvNeXt-T: stem, 18 depthwise, 3 downsamplers)."""
    counts = {name: network.convolutions() for name, network in NETWORKS.items()}
    assert counts == {"resnet18": 20, "resnet50": 53, "mobilenet_v2": 52, "efficientnet_b0": 81, "vgg11": 8,
                      "convnext_tiny": 22, "seed_cnn": 2}


def test_the_seed_cnn_list_is_the_seed_models_own():
    assert traced_layers(build_seed_cnn(), NETWORKS["seed_cnn"].input_shape) == dict(NETWORKS["seed_cnn"].layers)


@pytest.mark.parametrize("name", [n for n, network in NETWORKS.items() if network.torchvision_name])
def test_each_list_is_torchvisions_model(name):
    """Every convolution the torchvision model runs on a 224 px image, with its geometry and input size, and how
    often: the same as the list (torchvision's wheel need not match torch: its models are plain Python)."""
    model = torchvision_model(NETWORKS[name])
    if model is None:
        pytest.skip("torchvision is not installed")
    assert traced_layers(model, NETWORKS[name].input_shape) == dict(NETWORKS[name].layers)


def test_a_networks_sum_weights_each_layer_by_its_count():
    a, b = Shape(1, 4, 4, (8, 8), 3, padding=1), Shape(1, 4, 8, (8, 8), 1)
    network = Network("two", "test", ((a, 3), (b, 1)), (4, 8, 8))
    times = {without_batch(a): (1.0, 2.0), without_batch(b): (10.0, 5.0)}  # (ext, torch), seconds
    layers = {name: {"results": {"contiguous": {"8": {
        key: {"ext": ext * factor, "torch": torch_ * factor}
        for key, factor in (("forward_seconds", 1), ("forward_backward_seconds", 3))}}}}
        for name, (ext, torch_) in times.items()}
    totals = bench_networks.network_totals(network, layers, "contiguous", 8)
    assert totals["forward_seconds"] == {"ext": 3 * 1.0 + 10.0, "torch": 3 * 2.0 + 5.0}
    assert totals["forward_ext_over_torch"] == pytest.approx(13 / 11)
    assert totals["forward_backward_seconds"]["ext"] == pytest.approx(3 * 13)
    worst = bench_networks.worst_layers(network, layers, "contiguous", 8, n=1)
    assert [row["layer"] for row in worst] == [without_batch(b)] and worst[0]["count"] == 1


def test_threads_takes_a_list_and_the_run_uses_the_most():
    before = torch.get_num_threads()
    try:
        args = bench.parse_args(["--threads", "1,2", "--device", "cpu"])
        assert args.threads == [1, 2]
        bench.apply_settings(args)
        assert torch.get_num_threads() == 2
        assert bench.parse_args(["--threads", "1", "--device", "cpu"]).threads == [1]
    finally:
        torch.set_num_threads(before)
    for bad in ("0", "two", "1,,-2", ","):
        with pytest.raises(SystemExit):
            bench.parse_args(["--threads", bad, "--device", "cpu"])


def test_unknown_networks_and_batches_are_refused(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--network-names", "resnet18,alexnet", "--device", "cpu"])
    assert "unknown network(s) alexnet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--batches", "1,0", "--device", "cpu"])


def test_a_quick_networks_run_reports_every_part(tmp_path, capsys):
    """--networks --quick on the seed's CNN, on 1 and 2 threads: the JSON's parts, the tables, the files."""
    results = bench.main(["--networks", "--quick", "--network-names", "seed_cnn", "--threads", "1,2",
                          "--device", "cpu", "--out", str(tmp_path)])
    assert set(results) == {"networks"}
    run = results["networks"]
    assert set(run) == {"meta", "layers", "networks", "models", "targets"}
    assert run["meta"]["batches"] == [1] and run["meta"]["thread_counts"] == [1, 2]
    seed = run["networks"]["seed_cnn"]
    assert seed["convolutions"] == 2 and seed["layers"] == [["1->16, 28x28, k5 p2", 1], ["16->32, 14x14, k5 p2", 1]]
    for format_name in bench_networks.FORMATS:
        totals = seed["totals"][format_name]["1"]
        assert set(totals["forward_seconds"]) == {"im2col", "ext", "torch"}
        assert set(totals["forward_backward_seconds"]) == {"ext", "torch"}
        layer = run["layers"]["1->16, 28x28, k5 p2"]["results"][format_name]["1"]
        assert len(layer["kernels"]) == 3 and set(layer["threads"]) == {"1", "2"}
        assert set(run["models"]["seed_cnn"][format_name]) == {"1"}
    targets = run["targets"]
    assert targets["network_totals"]["checked"] == 2  # the forward in both formats (fwd+bwd counts from batch 8)
    assert targets["layers"]["checked"] == 2 * 2 * 2 and targets["im2col_floor"]["checked"] == 2 * 2
    printed = capsys.readouterr().out
    for text in ("| seed_cnn | 2 (2) | 0.003 | 1 |", "worst layers", "Batch 1 on 2 threads over 1",
                 "Whole models, conv_ext.convert(model)", "examples.mnist.model.build_seed_cnn"):
        assert text in printed
    written = {p.name for p in tmp_path.iterdir()}
    assert {"latest-networks.json", "latest-networks.md"} <= written
    assert json.loads((tmp_path / "latest-networks.json").read_text())["targets"] == json.loads(json.dumps(targets))


def test_a_kept_networks_run_is_indexed_and_its_headline_replaces_the_readme_section(tmp_path):
    from benchmarks.report import save_results
    results = bench.main(["--networks", "--quick", "--network-names", "seed_cnn", "--no-models", "--device", "cpu",
                          "--out", ""])["networks"]
    stem = report_networks.networks_stem(results)
    assert stem.endswith("-networks")
    saved = save_results(results, str(tmp_path / "results"), stem, report_networks.format_markdown,
                         report_networks.write_chart)
    assert f"[{stem}]({stem}.md)" in (tmp_path / "results" / "README.md").read_text()
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- networks:start -->\nSTALE\n<!-- networks:end -->\nb\n")
    report_networks.update_readme(str(readme), results, saved)
    text = readme.read_text()
    assert "STALE" not in text and text.startswith("a\n") and text.endswith("b\n")
    assert f"(results/{stem}.md)" in text and "| seed_cnn |" in text
