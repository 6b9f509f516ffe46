"""timm backbones (the optional extra): tiny randomly initialised models, never the network."""

from __future__ import annotations

import pytest
import torch

from mlgraph_cli.core.features.backbones.build import backbone_config, backbone_from_config, build_backbone
from mlgraph_cli.errors import MlgraphError

timm = pytest.importorskip("timm")


def message(fn, *args, **kwargs) -> str:
    with pytest.raises(MlgraphError) as exc:
        fn(*args, **kwargs)
    return str(exc.value)


@pytest.fixture(scope="module")
def convnext():
    return build_backbone("timm/test_convnext", "none", ["stages.2", "stages.3"], 64)


def test_two_stages_through_features_only(convnext):
    reference = timm.create_model("test_convnext", pretrained=False, features_only=True)
    assert convnext.name == "timm/test_convnext" and convnext.weights == "none"
    assert convnext.outputs == {"features": "stages.3", "features_aux": "stages.2"}
    assert convnext.out_shapes == {"features": (reference.feature_info.channels()[3], 2, 2),
                                   "features_aux": (reference.feature_info.channels()[2], 4, 4)}
    with torch.no_grad():
        out = convnext(torch.randn(2, 3, 64, 64))
    assert out["features"].shape == (2, *convnext.out_shapes["features"])


def test_preprocessing_and_default_size_come_from_timm(convnext):
    cfg = timm.create_model("test_convnext", pretrained=False).pretrained_cfg
    assert convnext.mean == tuple(cfg["mean"]) and convnext.std == tuple(cfg["std"])
    pre = backbone_config(convnext)["preprocessing"]
    assert pre["mean"] == list(cfg["mean"]) and pre["size"] == 64
    default = build_backbone("timm/test_resnet", "none")
    assert default.image_size == timm.create_model("test_resnet").pretrained_cfg["input_size"][-1]


def test_rebuilds_from_its_config(convnext):
    again = backbone_from_config(backbone_config(convnext))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(again(x)["features"], convnext(x)["features"])


def test_local_weights_file(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(11)
    model = timm.create_model("test_resnet", pretrained=False).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    b = build_backbone("timm/test_resnet", str(tmp_path / "w.safetensors"), None, 64)
    assert b.weights == str((tmp_path / "w.safetensors").resolve())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(b(x)["features"], model.forward_features(x), atol=1e-5)


def test_user_mistakes():
    assert message(build_backbone, "timm/test_convnxt", "none").startswith(
        "--backbone timm/test_convnxt: unknown timm model (did you mean timm/test_convnext")
    assert message(build_backbone, "timm/test_resnet", "none", ["layer9"], 64).startswith(
        "--layer layer9: not a layer of timm/test_resnet (choose from ")
    assert message(build_backbone, "timm/test_resnet", "no_such_tag", None, 64).startswith(
        "--weights no_such_tag: no such pretrained tag for timm/test_resnet (choose from DEFAULT")


def test_offline_uses_the_hugging_face_cache_or_says_what_to_fetch(monkeypatch, tmp_path):
    """Offline, pretrained timm weights come from the hub cache only; never the network."""
    from huggingface_hub import constants
    from safetensors.torch import save_file

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    text = message(build_backbone, "timm/test_resnet", "DEFAULT", None, 64, offline=True)
    assert text == ("timm/test_resnet.r160_in1k: timm weights are not in the Hugging Face cache and offline mode "
                    "forbids downloading (--offline, MLGRAPH_OFFLINE or HF_HUB_OFFLINE) (download model.safetensors "
                    "(or pytorch_model.bin) from https://huggingface.co/timm/test_resnet.r160_in1k and pass "
                    "--weights PATH, or --weights none)")
    repo = tmp_path / "models--timm--test_resnet.r160_in1k"  # the hub cache's layout
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    torch.manual_seed(13)
    model = timm.create_model("test_resnet", pretrained=False).eval()
    save_file(model.state_dict(), str(repo / "snapshots" / "abc123" / "model.safetensors"))
    b = build_backbone("timm/test_resnet", "DEFAULT", None, 64, offline=True)
    assert b.weights == "r160_in1k"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(b(x)["features"], model.forward_features(x), atol=1e-5)


def test_extract_records_timm_preprocessing(tmp_path, cli):
    from PIL import Image

    from mlgraph_cli.core.features.file import open_features

    (tmp_path / "imgs").mkdir()
    for i in range(2):
        Image.new("RGB", (40, 30), (i * 90, 20, 200)).save(tmp_path / "imgs" / f"{i}.png")
    result = cli("extract", tmp_path / "imgs", "-o", tmp_path / "f.h5", "--backbone", "timm/test_resnet",
                 "--weights", "none", "--image-size", "64", "--workers", "0", "-q")
    assert result.exit_code == 0, result.output
    cfg = timm.create_model("test_resnet").pretrained_cfg
    backbone = open_features(tmp_path / "f.h5").attrs["backbone_config"]
    assert backbone["name"] == "timm/test_resnet"
    assert backbone["preprocessing"]["mean"] == pytest.approx(list(cfg["mean"]))


def test_timm_missing_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    assert message(build_backbone, "timm/resnet18", "none") == (
        '--backbone timm/...: timm is not installed (install timm with `pip install "mlgraph[timm]"`)')


def test_an_unreachable_hub_fails_at_once_in_one_whole_line(tmp_path):
    """No network (the hub's address refuses connections): one line naming the hub and what to
    download, the reason whole, and none of huggingface_hub's retry lines."""
    import os
    import subprocess
    import sys

    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "a.png")
    env = {k: v for k, v in os.environ.items() if k not in ("MLGRAPH_OFFLINE", "HF_HUB_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"), MLGRAPH_PROGRESS="0")
    proc = subprocess.run([sys.executable, "-m", "mlgraph_cli", "extract", str(tmp_path / "imgs"), "-o",
                           str(tmp_path / "f.h5"), "--backbone", "timm/test_resnet", "--image-size", "32",
                           "--workers", "0"], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "Retry" not in proc.stderr and "Traceback" not in proc.stderr
    head = "Error: timm/test_resnet.r160_in1k: cannot reach the Hugging Face hub at http://127.0.0.1:9 ("
    tail = (") (download model.safetensors (or pytorch_model.bin) from https://huggingface.co/timm/test_resnet.r160_in1k "
            "and pass --weights PATH, or --weights none; or put it in the Hugging Face cache and pass --offline)")
    assert lines[0].startswith(head) and lines[0].endswith(tail), lines[0]
    reason = lines[0][len(head):-len(tail)]
    assert reason.startswith("ConnectError: ") and reason.endswith("Connection refused"), reason  # whole, not cut
    assert not (tmp_path / "f.h5").exists()
