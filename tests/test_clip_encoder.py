"""CLIP ViT-B/16's image encoder: OpenAI's state_dict layout, the image embeddings of transformers'
CLIPVisionModelWithProjection (the reference, QuickGELU, random weights, built from its config: no download) from a
file in each layout that users have, the inference copy, and the one-line refusals of other files."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference is built from a config: nothing to download

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from anomaly.errors import InputError
from anomaly.extraction.clip import (
    FEATURE_SIZE,
    ClipImageEncoder,
    clip_image_state_dict,
    load_clip,
    seeded_state_dict,
)
from tests.conftest import assert_close_to_scale

BLOCK_ENTRIES = ("attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
                 "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
                 "mlp.c_proj.bias", "ln_2.weight", "ln_2.bias")  # fmt: skip
# OpenAI's clip/model.py VisionTransformer (ViT-B/16): its state_dict under "visual." in the whole model's file.
OPENAI_ENTRIES = (
    ["class_embedding", "positional_embedding", "proj", "conv1.weight", "ln_pre.weight", "ln_pre.bias"]
    + [f"transformer.resblocks.{block}.{entry}" for block in range(12) for entry in BLOCK_ENTRIES]
    + ["ln_post.weight", "ln_post.bias"]
)


def test_state_dict_has_openais_names_and_shapes():
    state = ClipImageEncoder().state_dict()
    assert list(state) == OPENAI_ENTRIES
    shapes = {name: list(value.shape) for name, value in state.items()}
    assert shapes["class_embedding"] == [768] and shapes["positional_embedding"] == [197, 768]
    assert shapes["proj"] == [768, FEATURE_SIZE] == [768, 512] and shapes["conv1.weight"] == [768, 3, 16, 16]
    assert shapes["transformer.resblocks.11.attn.in_proj_weight"] == [2304, 768]
    assert shapes["transformer.resblocks.0.mlp.c_fc.weight"] == [3072, 768]


# ---------------------------------------------------------------------------------------------------------------
# The reference and the layouts of its weights
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    """transformers' ViT-B/16 with every parameter random (LayerNorm's too: an identity LayerNorm would hide a swap)
    and the image embeddings of two images: (state_dict, images, image_embeds)."""
    config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                              image_size=224, patch_size=16, projection_dim=512, hidden_act="quick_gelu")  # fmt: skip
    model = CLIPVisionModelWithProjection(config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if "norm" in name:  # layer_norm1/2, pre_layrnorm, post_layernorm
                parameter.copy_(1 + 0.1 * noise if name.endswith("weight") else 0.1 * noise)
            elif parameter.ndim == 1 and "embedding" not in name:
                parameter.copy_(0.02 * noise)
            else:
                parameter.copy_(noise / parameter.shape[-1] ** 0.5 if parameter.ndim > 1 else noise / 768**0.5)
        images = torch.randn(2, 3, 224, 224, generator=generator)
        embeds = model(pixel_values=images).image_embeds
    assert embeds.shape == (2, 512)
    return model.state_dict(), images, embeds


def openai_layout(hugging_face):
    """OpenAI's ``visual.*`` entries from transformers' (q, k, v stacked into in_proj; the projection transposed)."""
    prefix = "vision_model."
    vision = {key[len(prefix) :]: value for key, value in hugging_face.items() if key.startswith(prefix)}
    state = {
        "class_embedding": vision["embeddings.class_embedding"],
        "positional_embedding": vision["embeddings.position_embedding.weight"],
        "proj": hugging_face["visual_projection.weight"].t(),
        "conv1.weight": vision["embeddings.patch_embedding.weight"],
        "ln_pre.weight": vision["pre_layrnorm.weight"],
        "ln_pre.bias": vision["pre_layrnorm.bias"],
        "ln_post.weight": vision["post_layernorm.weight"],
        "ln_post.bias": vision["post_layernorm.bias"],
    }
    for block in range(12):
        theirs, ours = f"encoder.layers.{block}.", f"transformer.resblocks.{block}."
        for kind in ("weight", "bias"):
            query_key_value = [vision[f"{theirs}self_attn.{part}_proj.{kind}"] for part in "qkv"]
            state[f"{ours}attn.in_proj_{kind}"] = torch.cat(query_key_value)
            for openai, hf in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                               ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                               ("mlp.c_proj", "mlp.fc2")):  # fmt: skip
                state[f"{ours}{openai}.{kind}"] = vision[f"{theirs}{hf}.{kind}"]
    return {f"visual.{key}": value.contiguous() for key, value in state.items()}


def timm_layout(openai):
    """timm's names for OpenAI's entries, as timm's vision_transformer._convert_openai_clip renames them."""
    renames = (("conv1", "patch_embed.proj"), ("positional_embedding", "pos_embed"),
               ("transformer.resblocks.", "blocks."), ("ln_pre", "norm_pre"), ("ln_post", "norm"), ("ln_", "norm"),
               ("in_proj_", "qkv."), ("out_proj", "proj"), ("mlp.c_fc", "mlp.fc1"),
               ("mlp.c_proj", "mlp.fc2"))  # fmt: skip
    state = {}
    for key, value in openai.items():
        key = key[len("visual.") :]
        for old, new in renames:
            key = key.replace(old, new)
        if key == "proj":
            state["head.weight"], state["head.bias"] = value.t().contiguous(), torch.zeros(value.shape[1])
        elif key == "class_embedding":
            state["cls_token"] = value[None, None]
        elif key == "pos_embed":
            state["pos_embed"] = value[None]
        else:
            state[key] = value
    return state


TEXT_TOWER = {  # a few entries of each layout's text tower, which the image encoder ignores
    "openai": {"token_embedding.weight": torch.ones(8, 4),
               "transformer.resblocks.0.attn.in_proj_weight": torch.ones(12, 4), "ln_final.weight": torch.ones(4),
               "text_projection": torch.ones(4, 4), "logit_scale": torch.tensor(4.6)},
    "hugging face": {"text_model.embeddings.token_embedding.weight": torch.ones(8, 4),
                     "text_projection.weight": torch.ones(4, 4), "logit_scale": torch.tensor(4.6),
                     "vision_model.embeddings.position_ids": torch.arange(197)[None]},
    "timm": {},
}  # fmt: skip


def write(state, path):
    if path.suffix == ".safetensors":
        save_file({key: value.contiguous() for key, value in state.items()}, path)
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("layout, file_name", [  # every layout, and both readers (safetensors, torch.load)
    ("hugging face", "pytorch_model.bin"),
    ("openai", "open_clip_model.safetensors"),
    ("timm", "model.safetensors"),
])  # fmt: skip
def test_each_layouts_file_gives_the_image_embeds_of_transformers(reference, tmp_path, layout, file_name):
    hugging_face, images, expected = reference
    state = {"hugging face": lambda: hugging_face, "openai": lambda: openai_layout(hugging_face),
             "timm": lambda: timm_layout(openai_layout(hugging_face))}[layout]()  # fmt: skip
    encoder = load_clip(write({**state, **TEXT_TOWER[layout]}, tmp_path / file_name))
    assert not encoder.training
    with torch.no_grad():
        features = encoder(images)
    assert features.dtype == torch.float32
    assert_close_to_scale(features, expected, name=f"{layout} {file_name}")


def test_the_inference_copy_computes_the_same_features(reference):
    hugging_face, images, _ = reference
    encoder = ClipImageEncoder()
    encoder.load_state_dict(clip_image_state_dict(hugging_face, "reference"))
    released = {name: value.clone() for name, value in encoder.state_dict().items()}
    with torch.no_grad():
        expected = encoder.eval()(images)
        fast = encoder.inference_copy()
        assert_close_to_scale(fast(images), expected, name="float32 copy")
        bf16 = encoder.inference_copy(torch.bfloat16)
        features = bf16(images[:1])
    assert not fast.training and not any(parameter.requires_grad for parameter in fast.parameters())
    assert all(parameter.dtype == torch.bfloat16 for parameter in bf16.parameters()) and features.dtype == torch.float32
    # bfloat16 keeps 8 significant bits (a rounding of 2^-9 relative); each of the 12 blocks rounds its activations
    # a few times, and those errors add up like a random walk: sqrt(12 · 5) · 2^-9 ≈ 1.5 % of the features' scale.
    assert_close_to_scale(features, expected[:1], rel=0.05, name="bfloat16 copy")
    assert all(torch.equal(value, released[name]) for name, value in encoder.state_dict().items())


@pytest.fixture(scope="module")
def seeded():
    return seeded_state_dict(0)


def test_seeded_weights_are_reproducible_and_tell_images_apart(seeded, tmp_path):
    assert list(seeded) == OPENAI_ENTRIES and all(value.dtype == torch.float32 for value in seeded.values())
    again = seeded_state_dict(0)
    assert all(torch.equal(value, again[name]) for name, value in seeded.items())
    encoder = load_clip(write(seeded, tmp_path / "seeded.safetensors"))
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = encoder(images)
    assert torch.isfinite(features).all()
    scale = float(features.abs().max())
    assert 0.1 < scale < 100 and float((features[0] - features[1]).abs().max()) > 0.01 * scale


# ---------------------------------------------------------------------------------------------------------------
# Files that are not a CLIP ViT-B/16 image encoder: one line each, naming the file and what it holds
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_openai(seeded):
    return {f"visual.{name}": value for name, value in seeded.items()}


def refusal(path) -> str:
    with pytest.raises(InputError) as error:
        load_clip(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message[len(f"{path}: ") :]


def test_a_vit_l_14_is_named(tmp_path):
    """A ViT-L/14 file is refused by the shapes of its first entries (no 300 M parameters needed here)."""
    state = {"visual.conv1.weight": torch.zeros(1024, 3, 14, 14), "visual.positional_embedding": torch.zeros(257, 1024)}
    state.update({f"visual.transformer.resblocks.{block}.ln_1.weight": torch.ones(1024) for block in range(24)})
    assert refusal(write(state, tmp_path / "open_clip_model.safetensors")) == (
        "holds a ViT-L/14 image encoder (width 1024, patch 14, 24 blocks), not CLIP ViT-B/16 (width 768, patch 16, "
        "12 blocks), which this extractor runs"
    )


def test_a_resnet_is_not_taken_for_a_vit():
    state = {"visual.conv1.weight": torch.zeros(32, 3, 3, 3), "visual.layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1),
             "visual.attnpool.positional_embedding": torch.zeros(50, 2048)}  # open_clip's RN50
    with pytest.raises(InputError, match=r"^RN50.pt: holds an image encoder without transformer blocks "
                                         r"\(visual.conv1.weight \[32, 3, 3, 3\]: a ResNet\?\)"):  # fmt: skip
        clip_image_state_dict(state, "RN50.pt")


def test_a_text_encoder_alone_is_refused(tmp_path):
    state = {f"text_model.encoder.layers.0.mlp.fc1.{kind}": torch.ones(4) for kind in ("weight", "bias")}
    message = refusal(write({**state, "text_projection.weight": torch.ones(4, 4)}, tmp_path / "text.safetensors"))
    assert message.startswith("holds only CLIP's text encoder")


def test_missing_entries_are_named_as_the_file_names_them(seeded_openai, reference):
    incomplete = {key: value for key, value in seeded_openai.items() if "ln_post" not in key}
    with pytest.raises(InputError, match=r"^weights.pt: misses 2 of the 152 entries of a CLIP ViT-B/16 image encoder "
                                         r"in the OpenAI/open_clip layout \(visual\.\*\): visual.ln_post.weight, "
                                         r"visual.ln_post.bias$"):  # fmt: skip
        clip_image_state_dict(incomplete, "weights.pt")
    hugging_face = {key: value for key, value in reference[0].items() if "layers.3.self_attn.k_proj" not in key}
    with pytest.raises(InputError, match=r"misses 2 of the 200 entries .* Hugging Face transformers layout "
                                         r"\(vision_model\.\*\): vision_model.encoder.layers.3.self_attn.k_proj."
                                         r"weight, vision_model.encoder.layers.3.self_attn.k_proj.bias$"):  # fmt: skip
        clip_image_state_dict(hugging_face, "model.safetensors")


def test_entries_of_other_shapes_or_names_are_refused(seeded_openai):
    short = {**seeded_openai, "visual.positional_embedding": torch.zeros(50, 768)}  # 7 × 7 patches + 1: ViT-B/32's
    with pytest.raises(InputError, match=r"^w.bin: visual.positional_embedding \[50, 768\] cannot make "
                                         r"positional_embedding \[197, 768\] of a CLIP ViT-B/16 image "
                                         r"encoder$"):  # fmt: skip
        clip_image_state_dict(short, "w.bin")
    extra = {**seeded_openai, "visual.attn_pool.query": torch.zeros(1, 768)}
    with pytest.raises(InputError, match=r"^w.bin: has entries that .* does not have \(1\): visual.attn_pool.query$"):
        clip_image_state_dict(extra, "w.bin")


def test_a_timm_classifier_head_is_not_taken_for_the_projection(seeded_openai):
    state = timm_layout(seeded_openai)
    state["head.bias"] = torch.full((512,), 0.1)
    with pytest.raises(InputError, match="^model.safetensors: its head.bias is not zero"):
        clip_image_state_dict(state, "model.safetensors")


def test_openais_torchscript_archive_is_refused_without_being_run(tmp_path, monkeypatch):
    path = tmp_path / "ViT-B-16.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)

    def never(*args, **kwargs):
        raise AssertionError("the archive was loaded")

    monkeypatch.setattr(torch.jit, "load", never)
    message = refusal(path)
    assert message.startswith("a TorchScript archive (OpenAI's ViT-B-16.pt): refused")
    assert "open_clip_model.safetensors" in message and "openai/clip-vit-base-patch16" in message


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_a_file_that_is_not_weights_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"<!DOCTYPE html> rate limited" * 10)  # what a failed download may leave
    assert refusal(path).startswith("not a readable")


def test_a_state_dict_of_another_network_is_refused(tmp_path):
    message = refusal(write(nn.Conv3d(3, 8, 3).state_dict(), tmp_path / "i3d.pth"))
    assert message.startswith("holds no CLIP image encoder: none of its 2 entries (weight, bias)")


def test_a_missing_file_is_named(tmp_path):
    assert refusal(tmp_path / "open_clip_model.safetensors").startswith("weights file not found (CLIP ViT-B/16")
