"""Deploying a model built with conv_ext: ONNX (standard Conv nodes, run by onnxruntime), torch.export (the op kept,
or decomposed to aten.convolution and run without conv_ext), AOTInductor, and TorchScript (trace and script),
each equal to eager; the saved forms loaded in a fresh process."""
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, Dict

import pytest
import torch
from torch import nn

import conv_ext
from networks import resnet18

ROOT = Path(__file__).resolve().parents[1]
FRESH_PROCESS_TIMEOUT_S = 300  # a guard against a hung child, not a timing assertion

# Layers that cover every argument of the op and every way conv_ext.Conv2d reaches it: pairs of different
# values, no bias, groups, 'same' with even and odd totals (the odd one pads the input first), 'valid', and the
# padding modes that nn.Conv2d applies with F.pad before a convolution without padding.
LAYERS = {
    "strided-dilated-grouped": dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1),
                                    padding=(1, 2), dilation=(1, 2), groups=2),
    "nobias-depthwise": dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4, bias=False),
    "same-odd": dict(in_channels=4, out_channels=6, kernel_size=(2, 4), padding="same"),
    "same-dilated-grouped": dict(in_channels=4, out_channels=6, kernel_size=3, padding="same", dilation=2,
                                 groups=2),
    "valid": dict(in_channels=4, out_channels=3, kernel_size=3, padding="valid"),
    "reflect": dict(in_channels=4, out_channels=6, kernel_size=3, padding=2, padding_mode="reflect"),
    "replicate": dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, padding_mode="replicate"),
    "circular": dict(in_channels=4, out_channels=6, kernel_size=3, padding=(1, 2), padding_mode="circular"),
}


def layer_model(kwargs: Dict[str, Any]) -> nn.Module:
    """The layer between two conv_ext convolutions, in eval mode, seeded."""
    torch.manual_seed(0)
    channels = kwargs["in_channels"]
    return nn.Sequential(conv_ext.Conv2d(3, channels, 3, padding=1), nn.ReLU(), conv_ext.Conv2d(**kwargs),
                         nn.Tanh()).eval()


def small_model() -> nn.Module:
    """Three conv_ext layers: strided with bias, 'same' with an odd total, grouped without bias."""
    torch.manual_seed(0)
    return nn.Sequential(conv_ext.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                         conv_ext.Conv2d(8, 8, (2, 3), padding="same"), nn.ReLU(),
                         conv_ext.Conv2d(8, 4, 3, groups=2, bias=False)).eval()


def conv_ext_targets(graph: torch.fx.Graph) -> list:
    return [node.target for node in graph.nodes
            if isinstance(node.target, torch._ops.OpOverload) and node.target.namespace == "conv_ext"]


def run_fresh_process(code: str) -> None:
    """Runs `code` in a new Python process with the repository root first on the path; fails with its stderr."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=FRESH_PROCESS_TIMEOUT_S)
    assert completed.returncode == 0, completed.stderr[-4000:]


# ONNX ------------------------------------------------------------------------------------------------------------

def import_onnx_tools():
    """onnx, onnxruntime: the project's test setup installs them (with onnxscript, which torch.onnx uses)."""
    reason = ("needs onnx, onnxscript and onnxruntime (make test installs them; "
              "pip install onnx onnxscript onnxruntime)")
    onnx = pytest.importorskip("onnx", reason=reason)
    pytest.importorskip("onnxscript", reason=reason)
    onnxruntime = pytest.importorskip("onnxruntime", reason=reason)
    return onnx, onnxruntime


def export_onnx(model: nn.Module, input: torch.Tensor, **kwargs: Any):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own deprecation notices while tracing
        return torch.onnx.export(model, (input,), dynamo=True, verbose=False,
                                 custom_translation_table=conv_ext.onnx_translation_table(), **kwargs)


def check_onnx_model(model: nn.Module, program: Any, inputs: list) -> Any:
    """The ONNX model has only standard ops, one Conv per conv_ext layer, passes onnx.checker, and onnxruntime
    on the CPU gives eager's outputs for each input. Returns the ONNX model."""
    onnx, onnxruntime = import_onnx_tools()
    proto = program.model_proto
    domains = {node.domain for node in proto.graph.node} | {opset.domain for opset in proto.opset_import}
    assert domains <= {"", "ai.onnx"}, f"custom domains in the ONNX model: {domains}"
    conv_layers = sum(isinstance(module, conv_ext.Conv2d) for module in model.modules())
    assert [node.op_type for node in proto.graph.node].count("Conv") == conv_layers
    onnx.checker.check_model(proto, full_check=True)
    ort_session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for input in inputs:
        (output,) = ort_session.run(None, {ort_session.get_inputs()[0].name: input.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(output), model(input))
    return proto


@pytest.mark.parametrize("kwargs", LAYERS.values(), ids=LAYERS.keys())
def test_onnx_export_runs_in_onnxruntime(kwargs):
    """Exported with a dynamic batch size; onnxruntime runs it at the traced batch size and another one."""
    import_onnx_tools()
    model = layer_model(kwargs)
    batch = torch.export.Dim("batch")
    program = export_onnx(model, torch.randn(2, 3, 11, 10), dynamic_shapes=({0: batch},))
    check_onnx_model(model, program, [torch.randn(2, 3, 11, 10), torch.randn(5, 3, 11, 10)])


def test_onnx_conv_attributes_are_the_layers():
    """pads as ONNX orders them (starts then ends), strides, dilations and group, read off the Conv node."""
    onnx, _ = import_onnx_tools()
    kwargs = LAYERS["strided-dilated-grouped"]
    model = nn.Sequential(conv_ext.Conv2d(**kwargs)).eval()
    proto = check_onnx_model(model, export_onnx(model, torch.randn(1, 4, 9, 9)), [torch.randn(1, 4, 9, 9)])
    (conv,) = [node for node in proto.graph.node if node.op_type == "Conv"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert attributes["pads"] == [1, 2, 1, 2]
    assert attributes["strides"] == [2, 1]
    assert attributes["dilations"] == [1, 2]
    assert attributes["group"] == 2
    assert len(conv.input) == 3  # the bias


def test_onnx_export_of_a_converted_resnet18():
    import_onnx_tools()
    torch.manual_seed(0)
    model = conv_ext.convert(resnet18()).eval()
    input = torch.randn(1, 3, 64, 64)
    check_onnx_model(model, export_onnx(model, input), [input])


def test_legacy_onnx_exporter_names_the_call_that_works():
    model = small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match=r"dynamo=True, custom_translation_table=conv_ext\."
                                               r"onnx_translation_table\(\)"):
            torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), os.devnull, dynamo=False)


def test_onnx_translation_table_without_onnxscript_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes `import onnxscript` fail
    with pytest.raises(ImportError, match="pip install onnx onnxscript"):
        conv_ext.onnx_translation_table()


# torch.export ----------------------------------------------------------------------------------------------------

def assert_saved_program_runs_in_a_fresh_process(program, model, input, tmp_path, before: str, after: str) -> None:
    """Saves `program`, loads it in a new process (running `before` first and `after` last) and checks that it
    computes what `model` does on `input`."""
    torch.export.save(program, tmp_path / "model.pt2")
    torch.save({"input": input, "expected": model(input).detach()}, tmp_path / "io.pt")
    run_fresh_process("import torch\n" + textwrap.dedent(before) + textwrap.dedent(f"""
        program = torch.export.load({str(tmp_path / "model.pt2")!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        torch.testing.assert_close(program.module()(io["input"]), io["expected"])
    """) + textwrap.dedent(after))


def test_exported_program_keeps_the_op_and_loads_in_a_fresh_process(tmp_path):
    model, input = small_model(), torch.randn(2, 3, 12, 10)
    program = torch.export.export(model, (input,))
    assert len(conv_ext_targets(program.graph)) == 3
    torch.testing.assert_close(program.module()(input), model(input))
    assert_saved_program_runs_in_a_fresh_process(program, model, input, tmp_path, """
        import conv_ext  # registers torch.ops.conv_ext, which the saved program calls
    """, "")


def test_decomposed_program_runs_without_conv_ext(tmp_path):
    model, input = small_model(), torch.randn(2, 3, 12, 10)
    program = torch.export.export(model, (input,)).run_decompositions(conv_ext.decompositions())
    assert conv_ext_targets(program.graph) == []
    convolutions = [n for n in program.graph.nodes if n.target is torch.ops.aten.convolution.default]
    assert len(convolutions) == 3
    torch.testing.assert_close(program.module()(input), model(input))
    assert_saved_program_runs_in_a_fresh_process(program, model, input, tmp_path, "", """
        import sys
        assert "conv_ext" not in sys.modules, "the decomposed program imported conv_ext"
    """)


def test_decompositions_merge_with_the_core_aten_table():
    model, input = small_model(), torch.randn(2, 3, 12, 10)
    table = torch.export.default_decompositions()
    table.update(conv_ext.decompositions())
    program = torch.export.export(model, (input,)).run_decompositions(table)
    assert conv_ext_targets(program.graph) == []
    torch.testing.assert_close(program.module()(input), model(input))


# AOTInductor -----------------------------------------------------------------------------------------------------

def test_aoti_package_runs_with_the_library_loaded(tmp_path):
    """One small model (the C++ compile is the slow part). The package calls the op through the dispatcher, so
    the process that runs it must have loaded conv_ext's library: here by `import conv_ext`."""
    model, input = small_model(), torch.randn(2, 3, 12, 10)
    program = torch.export.export(model, (input,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "model.pt2"))
    torch.save({"input": input, "expected": model(input).detach()}, tmp_path / "io.pt")
    run_fresh_process(f"""
        import torch
        import conv_ext  # loads the op library the package calls into
        runner = torch._inductor.aoti_load_package({path!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        torch.testing.assert_close(runner(io["input"]), io["expected"])
    """)


# TorchScript -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", LAYERS.values(), ids=LAYERS.keys())
def test_scripted_layer_equals_eager(kwargs):
    """torch.jit.script compiles conv_ext.Conv2d to the op itself, for batched and unbatched input."""
    torch.manual_seed(0)
    layer = conv_ext.Conv2d(**kwargs)
    scripted = torch.jit.script(layer)
    assert "conv_ext::conv2d" in str(scripted.inlined_graph)
    for input in (torch.randn(2, 4, 11, 10), torch.randn(4, 11, 10)):
        torch.testing.assert_close(scripted(input), layer(input))


def test_traced_and_scripted_models_load_in_a_fresh_process(tmp_path):
    model, input = small_model(), torch.randn(2, 3, 12, 10)
    traced = torch.jit.trace(model, (input,))
    scripted = torch.jit.script(model)
    for name, module in (("traced", traced), ("scripted", scripted)):
        assert "conv_ext::conv2d" in str(module.inlined_graph), name
        torch.testing.assert_close(module(input), model(input))
        module.save(str(tmp_path / f"{name}.pt"))
    torch.save({"input": input, "expected": model(input).detach()}, tmp_path / "io.pt")
    run_fresh_process(f"""
        import torch
        import conv_ext  # registers torch.ops.conv_ext, which the saved modules call
        io = torch.load({str(tmp_path / "io.pt")!r})
        for name in ("traced", "scripted"):
            module = torch.jit.load({str(tmp_path)!r} + "/" + name + ".pt")
            torch.testing.assert_close(module(io["input"]), io["expected"])
    """)
