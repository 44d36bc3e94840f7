"""OpenAI's CLIP ViT-B/16 image encoder (``VisionTransformer`` of OpenAI's ``clip/model.py``, as open_clip has it)
as a feature extractor.

images B 3 224 224 (RGB in [0, 1], then normalised with CLIP_MEAN and CLIP_STD) -> B 512: the projected class token,
what open_clip's ``encode_image`` returns (not L2-normalised). conv1 (16 × 16, stride 16, no bias) cuts the image into
14 × 14 = 196 patch tokens of width 768; the class token is put first (197 tokens), the positional embedding added,
then ln_pre, 12 residual attention blocks (x + attn(ln_1(x)), x + mlp(ln_2(x)); 12 heads of 64; MLP 768 -> 3072 ->
768 with QuickGELU, x·sigmoid(1.702·x), the activation OpenAI trained with), ln_post of the class token, and the
projection ``proj`` 768 × 512. About 35.1 GFLOP per image (GFLOP_PER_IMAGE).

Parameter names and shapes are those of OpenAI's and open_clip's state dicts without their ``visual.`` prefix (152
entries): they are the file format. ``inference_copy`` gives the form to run, in float32 or bfloat16.

Weight files (``load_clip``; every layout goes through ``clip_image_state_dict``, which converts it to OpenAI's):

- OpenAI / open_clip layout, ``visual.*`` entries: ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``
  of ``timm/vit_base_patch16_clip_224.openai`` on the Hugging Face hub. The text tower's entries are ignored.
- Hugging Face transformers layout, ``vision_model.*`` and ``visual_projection.weight``: ``model.safetensors`` or
  ``pytorch_model.bin`` of ``openai/clip-vit-base-patch16`` (a whole CLIPModel or a CLIPVisionModelWithProjection).
  Its query, key and value projections are concatenated into ``in_proj_weight`` and ``in_proj_bias`` (the order
  nn.MultiheadAttention uses), ``visual_projection.weight`` is transposed into ``proj``. The text tower's entries
  (``text_model.*``, ``text_projection``, ``logit_scale``) are ignored.
- timm's layout (``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.*``, ``head``): ``model.safetensors`` or
  ``pytorch_model.bin`` of ``timm/vit_base_patch16_clip_224.openai``. ``head.weight`` is transposed into ``proj``;
  its ``head.bias`` must be zero (timm stores CLIP's bias-free projection as a linear head with a zero bias).
- This module's own state_dict (OpenAI's names without ``visual.``), as ``torch.save`` or safetensors' ``save_file``
  writes it (``seeded_state_dict``'s weights, for one).
- Refused: OpenAI's own ``ViT-B-16.pt``, a TorchScript archive (recognised by its ``code/`` entries, without loading
  it): running the code inside a data file is not safe; use one of the files above instead.

``.safetensors`` files are read with the safetensors package, other files with ``torch.load(weights_only=True)``
(``anomaly.engine.checkpoint.load_checkpoint``). A file that holds another network (ViT-B/32, ViT-L/14, a ResNet,
...), only CLIP's text encoder, misses entries, has entries of other shapes or is not a weight file at all is refused
in one line saying what was found. Only the weights' names and shapes can be checked: a ViT-B/16 trained with GELU
instead of QuickGELU (LAION's open_clip ViT-B-16, for one) has the same entries and would load; its features would be
those of a slightly different network.
"""

import copy
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from anomaly.engine.checkpoint import load_checkpoint, model_state_of
from anomaly.errors import InputError, check_choice
from anomaly.extraction.network import CROP_SIZE, cut_crops
from anomaly.layout import FRAME_READINGS, FRAMES_PER_SNIPPET
from anomaly.precision import NETWORK_PRECISIONS, dtype_of

if TYPE_CHECKING:  # preprocess imports this module's constants
    from anomaly.extraction.preprocess import Preset

PathLike = Union[str, Path]
IMAGE_SIZE = 224
PATCH_SIZE = 16
WIDTH = 768
LAYERS = 12
HEADS = 12
MLP_WIDTH = 4 * WIDTH
FEATURE_SIZE = 512
TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2 + 1  # 196 patches and the class token
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # per RGB channel, of pixels scaled to [0, 1]
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Multiply-adds of one image, ×2: the patch embedding (196 patches × 768 × 3·16·16), per block the query, key and
# value projections (197 × 768 × 2304), attention scores and their weighted sum (2 × 197 × 197 × 768 over the 12
# heads), the output projection (197 × 768 × 768) and the MLP (2 × 197 × 768 × 3072), and the final projection
# (768 × 512). LayerNorm, softmax and QuickGELU are elementwise: under 1 % more.
GFLOP_PER_IMAGE = 2 * (
    (TOKENS - 1) * WIDTH * 3 * PATCH_SIZE**2
    + LAYERS * TOKENS * WIDTH * (3 * WIDTH + 2 * TOKENS + WIDTH + 2 * MLP_WIDTH)
    + WIDTH * FEATURE_SIZE
) / 1e9  # 35.13
WEIGHTS_FILE = ("CLIP ViT-B/16: open_clip_model.safetensors of timm/vit_base_patch16_clip_224.openai, or "
                "model.safetensors of openai/clip-vit-base-patch16")
WEIGHTS_NOT_FOUND = f"weights file not found ({WEIGHTS_FILE})"
TORCHSCRIPT_REFUSED = (
    "a TorchScript archive (OpenAI's ViT-B-16.pt): refused, loading it would run the code inside it; use "
    "open_clip_model.safetensors of timm/vit_base_patch16_clip_224.openai or model.safetensors of "
    "openai/clip-vit-base-patch16 (Hugging Face hub) instead"
)


class QuickGELU(nn.Module):
    """x·sigmoid(1.702·x): the GELU approximation OpenAI's CLIP was trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameters (``in_proj_weight`` 3D × D: query, key,
    value; ``in_proj_bias``; ``out_proj``), batch first: x B L D -> B L D."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(3 * width, width)))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(batch, tokens, 3, self.heads, -1)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each B heads L D/heads
        attended = F.scaled_dot_product_attention(query, key, value)  # softmax(q·kᵀ / sqrt(D/heads))·v
        return self.out_proj(attended.transpose(1, 2).reshape(batch, tokens, width))


class ResidualAttentionBlock(nn.Module):
    """x B L D -> x + attn(ln_1(x)), then + mlp(ln_2(x)) (pre-norm)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = Attention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * width, width)),
        ]))  # fmt: skip
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """The blocks, as ``transformer.resblocks.{i}`` (OpenAI's names): x B L D -> B L D."""

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: Tensor) -> Tensor:
        return self.resblocks(x)


class ClipImageEncoder(nn.Module):
    """CLIP ViT-B/16's image tower: images B 3 224 224 (normalised with CLIP_MEAN, CLIP_STD) -> B 512."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, WIDTH, PATCH_SIZE, stride=PATCH_SIZE, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(WIDTH))
        self.positional_embedding = nn.Parameter(torch.zeros(TOKENS, WIDTH))
        self.ln_pre = nn.LayerNorm(WIDTH)
        self.transformer = Transformer(WIDTH, LAYERS, HEADS)
        self.ln_post = nn.LayerNorm(WIDTH)
        self.proj = nn.Parameter(torch.zeros(WIDTH, FEATURE_SIZE))

    def inference_copy(self, dtype: torch.dtype = torch.float32) -> "ClipImageEncoder":
        """An eval-only copy with weights (and so activations) in ``dtype``, float32 or bfloat16, whose parameters
        do not require gradients; ``forward`` casts its input to ``dtype`` and returns float32 features. In
        bfloat16 the matrix products accumulate in float32 inside the kernels and LayerNorm computes its
        statistics in float32; each layer's output is rounded to bfloat16."""
        return copy.deepcopy(self).eval().requires_grad_(False).to(dtype)

    def forward(self, images: Tensor) -> Tensor:
        """images B 3 224 224 -> B 512 float32 (computed in the weights' dtype)."""
        x = self.conv1(images.to(self.proj.dtype)).flatten(2).transpose(1, 2)  # B 196 768
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return (self.ln_post(x[:, 0]) @ self.proj).float()


def _encoder_shapes() -> Dict[str, Tuple[int, ...]]:
    with torch.device("meta"):
        return {name: tuple(value.shape) for name, value in ClipImageEncoder().state_dict().items()}


ENCODER_SHAPES = _encoder_shapes()  # OpenAI's names (without ``visual.``) and shapes, in state_dict order


def _same(tensor: Tensor) -> Tensor:
    return tensor


def _transposed(tensor: Tensor) -> Tensor:
    return tensor.t().contiguous()


def _concatenated(*tensors: Tensor) -> Tensor:
    return torch.cat(tensors)


def _token_rows(tensor: Tensor) -> Tensor:
    """timm's 1 × 1 × D class token and 1 × L × D positional embedding -> D and L × D."""
    return tensor.reshape(tensor.shape[-1]) if tensor.numel() == tensor.shape[-1] else tensor.flatten(0, -2)


# Where each entry of OpenAI's layout is in a file: the file's keys (one, or q, k and v for in_proj) and the function
# that makes the entry of their tensors.
Entry = Tuple[Tuple[str, ...], Callable[..., Tensor]]
BLOCK = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)[._](weight|bias)")  # block, module, kind


class Renaming(NamedTuple):
    """Another layout's names for OpenAI's entries."""

    top: Dict[str, Tuple[str, Callable[[Tensor], Tensor]]]  # entries outside the blocks: their key and conversion
    block: str  # block i's prefix, {} standing for i
    modules: Dict[str, Tuple[str, ...]]  # a block's modules, OpenAI's -> theirs (several: concatenated)


HUGGING_FACE_NAMES = Renaming(
    top={
        "class_embedding": ("vision_model.embeddings.class_embedding", _same),
        "positional_embedding": ("vision_model.embeddings.position_embedding.weight", _same),
        "proj": ("visual_projection.weight", _transposed),
        "conv1.weight": ("vision_model.embeddings.patch_embedding.weight", _same),
        **{f"ln_pre.{kind}": (f"vision_model.pre_layrnorm.{kind}", _same) for kind in ("weight", "bias")},
        **{f"ln_post.{kind}": (f"vision_model.post_layernorm.{kind}", _same) for kind in ("weight", "bias")},
    },
    block="vision_model.encoder.layers.{}.",
    modules={"attn.in_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
             "attn.out_proj": ("self_attn.out_proj",), "ln_1": ("layer_norm1",), "mlp.c_fc": ("mlp.fc1",),
             "mlp.c_proj": ("mlp.fc2",), "ln_2": ("layer_norm2",)},  # fmt: skip
)
TIMM_NAMES = Renaming(
    top={
        "class_embedding": ("cls_token", _token_rows),
        "positional_embedding": ("pos_embed", _token_rows),
        "proj": ("head.weight", _transposed),
        "conv1.weight": ("patch_embed.proj.weight", _same),
        **{f"ln_pre.{kind}": (f"norm_pre.{kind}", _same) for kind in ("weight", "bias")},
        **{f"ln_post.{kind}": (f"norm.{kind}", _same) for kind in ("weight", "bias")},
    },
    block="blocks.{}.",
    modules={"attn.in_proj": ("attn.qkv",), "attn.out_proj": ("attn.proj",), "ln_1": ("norm1",),
             "mlp.c_fc": ("mlp.fc1",), "mlp.c_proj": ("mlp.fc2",), "ln_2": ("norm2",)},  # fmt: skip
)


def _renamed_entry(renaming: Renaming) -> Callable[[str], Entry]:
    def entry(name: str) -> Entry:
        block = BLOCK.fullmatch(name)
        if block is None:
            key, convert = renaming.top[name]
            return (key,), convert
        layer, module, kind = block.groups()
        keys = tuple(f"{renaming.block.format(layer)}{theirs}.{kind}" for theirs in renaming.modules[module])
        return keys, _concatenated if len(keys) > 1 else _same

    return entry


def _openai_entry(prefix: str) -> Callable[[str], Entry]:
    return lambda name: ((prefix + name,), _same)


class Layout(NamedTuple):
    """A weight-file layout of the image encoder."""

    name: str
    owns: Callable[[str], bool]  # the entries of the image encoder (the others, a text tower's, are ignored)
    entry: Callable[[str], Entry]  # where each of OpenAI's entries comes from
    ignored: FrozenSet[str] = frozenset()  # entries of the image encoder that carry nothing


OPENAI = Layout("OpenAI/open_clip layout (visual.*)", lambda key: key.startswith("visual."), _openai_entry("visual."))
OPENAI_BARE = Layout("OpenAI layout without its visual. prefix", lambda key: True, _openai_entry(""))
HUGGING_FACE = Layout(
    "Hugging Face transformers layout (vision_model.*)",
    lambda key: key.startswith("vision_model.") or key == "visual_projection.weight",
    _renamed_entry(HUGGING_FACE_NAMES),
    frozenset({"vision_model.embeddings.position_ids"}),  # a buffer of older transformers versions: 0, 1, ..., 196
)
TIMM = Layout("timm layout", lambda key: True, _renamed_entry(TIMM_NAMES), frozenset({"head.bias"}))
TEXT_ENTRIES = ("text_model.", "text_projection", "token_embedding.", "ln_final.", "logit_scale")
# (width, patch, blocks) of the ViTs whose weights may be mistaken for these, to name what a file holds
KNOWN_VITS = {(768, 32, 12): "ViT-B/32", (1024, 14, 24): "ViT-L/14", (1280, 14, 32): "ViT-H/14"}
BLOCK_INDEX = re.compile(r"(?:^|\.)(?:resblocks|layers|blocks)\.(\d+)\.")


def _few(keys: List[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def _layout_of(state: Mapping[str, Tensor], source: PathLike) -> Layout:
    keys = list(state)
    if any(key.startswith("visual.") for key in keys):
        return OPENAI
    if any(key.startswith("vision_model.") for key in keys):
        return HUGGING_FACE
    if "patch_embed.proj.weight" in state or any(key.startswith("blocks.") for key in keys):
        return TIMM
    if "conv1.weight" in state:
        return OPENAI_BARE
    if any(key.startswith(TEXT_ENTRIES) for key in keys):
        raise InputError(source, "holds only CLIP's text encoder (text_model.*, token_embedding, text_projection ...), "
                         "no image encoder: use the file of the whole model or of its image tower")
    raise InputError(source, f"holds no CLIP image encoder: none of its {len(keys)} entries ({_few(keys)}) is in "
                     "the OpenAI/open_clip (visual.*), Hugging Face (vision_model.*) or timm (patch_embed.*, blocks.*) "
                     "layout")


def _check_architecture(state: Mapping[str, Tensor], layout: Layout, source: PathLike) -> None:
    """A one-line error naming the ViT that the file holds when it is not a ViT-B/16."""
    (patch_key,), _ = layout.entry("conv1.weight")
    if patch_key not in state or state[patch_key].ndim != 4:
        return  # reported with the other missing or misshapen entries
    width, patch = state[patch_key].shape[0], state[patch_key].shape[-1]
    blocks = len({match.group(1) for key in state if layout.owns(key) for match in [BLOCK_INDEX.search(key)] if match})
    if blocks == 0:  # open_clip's ResNets (RN50, ...) also have a visual.conv1, their stem
        raise InputError(source, f"holds an image encoder without transformer blocks ({patch_key} "
                         f"{list(state[patch_key].shape)}: a ResNet?), not CLIP ViT-B/16, which this extractor runs")
    if (width, patch, blocks) != (WIDTH, PATCH_SIZE, LAYERS):
        name = KNOWN_VITS.get((width, patch, blocks), "ViT")
        raise InputError(source, f"holds a {name} image encoder (width {width}, patch {patch}, {blocks} blocks), not "
                         f"CLIP ViT-B/16 (width {WIDTH}, patch {PATCH_SIZE}, {LAYERS} blocks), which this extractor "
                         "runs")


def clip_image_state_dict(state: Mapping[str, Tensor], source: PathLike) -> Dict[str, Tensor]:
    """The CLIP ViT-B/16 image encoder's weights in OpenAI's layout (``ClipImageEncoder``'s state_dict, float32) from
    a state dict in any layout that ``load_clip`` reads (the module docstring lists them): its text tower ignored,
    Hugging Face's and timm's entries converted. One-line InputErrors naming ``source`` for another ViT, a text
    encoder alone, missing, unexpected or misshapen entries."""
    layout = _layout_of(state, source)
    _check_architecture(state, layout, source)
    entries = {name: layout.entry(name) for name in ENCODER_SHAPES}
    wanted = [key for keys, _ in entries.values() for key in keys]
    missing = [key for key in wanted if key not in state]
    if missing:
        raise InputError(source, f"misses {len(missing)} of the {len(wanted)} entries of a CLIP ViT-B/16 image encoder "
                         f"in the {layout.name}: {_few(missing)}")
    known = set(wanted) | layout.ignored
    unexpected = [key for key in state if layout.owns(key) and key not in known]
    if unexpected:
        raise InputError(source, f"has entries that a CLIP ViT-B/16 image encoder in the {layout.name} does not "
                         f"have ({len(unexpected)}): {_few(unexpected)}")
    if layout is TIMM and "head.bias" in state and bool(state["head.bias"].any()):
        raise InputError(source, "its head.bias is not zero: a classifier head trained in timm, not CLIP's "
                         "projection (which has no bias)")
    converted = {}
    for name, (keys, convert) in entries.items():
        tensors = [state[key] for key in keys]
        shapes = " and ".join(f"{key} {list(tensor.shape)}" for key, tensor in zip(keys, tensors))
        try:
            value = convert(*tensors)
        except RuntimeError:
            value = None
        if value is None or tuple(value.shape) != ENCODER_SHAPES[name]:
            raise InputError(source, f"{shapes} cannot make {name} {list(ENCODER_SHAPES[name])} of a CLIP ViT-B/16 "
                             "image encoder")
        converted[name] = value.float()
    return converted


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive (torch.jit.save) is a zip whose archive folder holds ``code/``; torch.save's has none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())


def _read_weights(path: PathLike) -> Dict[str, Tensor]:
    """The state dict in ``path``: a ``.safetensors`` file (safetensors), or a PyTorch file (``weights_only=True``);
    a TorchScript archive is refused without being loaded."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, WEIGHTS_NOT_FOUND)
    if path.suffix == ".safetensors":
        try:
            state = load_file(path)
        except (SafetensorError, OSError) as error:
            raise InputError(path, f"not a readable safetensors file ({str(error).splitlines()[0]})") from None
    elif _is_torchscript(path):
        raise InputError(path, TORCHSCRIPT_REFUSED)
    else:
        state = load_checkpoint(path)
    return model_state_of(state, path)


def load_clip(path: PathLike) -> ClipImageEncoder:
    """The CLIP ViT-B/16 image encoder with the weights of ``path`` (any file of the module docstring), in eval
    mode, float32."""
    return encoder_of(clip_image_state_dict(_read_weights(path), path))


def encoder_of(state: Dict[str, Tensor]) -> ClipImageEncoder:
    """The encoder holding the tensors of ``state`` (OpenAI's layout), in eval mode."""
    with torch.device("meta"):  # no random initialisation of 86 M parameters that are replaced at once
        encoder = ClipImageEncoder()
    encoder.load_state_dict(state, strict=True, assign=True)
    return encoder.eval()


def seeded_state_dict(seed: int = 0) -> Dict[str, Tensor]:
    """Seeded weights in OpenAI's layout, for tests and benchmarks where the released ones are not at hand: LayerNorm
    1 + 0.1·N and 0.1·N, embeddings and ``proj`` N / sqrt(768) (OpenAI's initial scale), other weights
    N / sqrt(fan_in) (activations keep their scale through each layer), other biases 0.01·N; N: float32 draws of
    ``numpy.random.default_rng(seed)``, entry after entry in state_dict order."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in ENCODER_SHAPES.items():
        draw = rng.standard_normal(shape, dtype=np.float32)
        if ".ln_" in name or name.startswith("ln_"):
            array = 1 + 0.1 * draw if name.endswith("weight") else 0.1 * draw
        elif name in ("class_embedding", "positional_embedding", "proj"):
            array = draw / np.sqrt(WIDTH)
        elif name.endswith("weight"):
            array = draw / np.sqrt(np.prod(shape[1:]))
        else:
            array = 0.01 * draw
        state[name] = torch.from_numpy(np.asarray(array, dtype=np.float32))
    return state


MIDDLE_FRAME = FRAMES_PER_SNIPPET // 2  # --clip_frames middle: frame 8 of a snippet's 0-15
IMAGES_PER_FORWARD = 32  # crops of frames per encoder forward: activations that stay small whatever the batch


def images_per_row(frames: Optional[str]) -> int:
    """The images a snippet's row of one crop costs under the frame reading ``frames``: 16 (mean), 1 (middle)."""
    return FRAMES_PER_SNIPPET if frames == "mean" else 1


class ClipExtractor:
    """The image encoder on a device, as extraction runs it: uint8 clips B 16 h w 3 (frames resized by a preset) ->
    float32 features B N 512, a snippet's row of each crop made of its frames' embeddings by ``frames``: ``mean``
    of the 16 frames' (16 forwards), or the ``middle`` frame's alone (``MIDDLE_FRAME``; 1 forward).

    The crops are cut and scaled on the device (``Preset.normalise``, ``cut_crops``) for as many clips at a time as
    make about ``IMAGES_PER_FORWARD`` images (one clip at least), which go through the encoder ``IMAGES_PER_FORWARD``
    at a time, in ``precision`` (fp32, or bf16 weights and activations); the mean is taken in float32."""

    def __init__(self, encoder: ClipImageEncoder, device: torch.device, precision: str = "fp32",
                 frames: str = "mean"):  # fmt: skip
        check_choice(precision, NETWORK_PRECISIONS, "precision")
        check_choice(frames, FRAME_READINGS, "--clip_frames")
        self.device = torch.device(device)
        self.precision = precision
        self.frames = frames
        self.encoder = encoder.inference_copy(dtype_of(precision)).to(self.device)

    @torch.no_grad()
    def __call__(self, clips: Union[np.ndarray, Tensor], preset: "Preset", num_crops: int) -> np.ndarray:
        clips = torch.as_tensor(clips)
        if self.frames == "middle":
            clips = clips[:, MIDDLE_FRAME : MIDDLE_FRAME + 1]
        boxes = preset.crop_boxes(clips.shape[2], clips.shape[3], num_crops)
        images_per_clip = len(boxes) * clips.shape[1]
        rows = []
        for group in clips.split(max(1, IMAGES_PER_FORWARD // images_per_clip)):
            frames = preset.normalise(group.to(self.device, non_blocking=True))  # G 3 F h w
            images = cut_crops(frames, boxes).transpose(1, 2).reshape(-1, 3, CROP_SIZE, CROP_SIZE)  # (G N F) 3 224 224
            embeddings = torch.cat([self.encoder(part) for part in images.split(IMAGES_PER_FORWARD)])
            rows.append(embeddings.view(len(group), len(boxes), -1, FEATURE_SIZE).mean(dim=2))  # G N 512
        return torch.cat(rows).cpu().numpy()
