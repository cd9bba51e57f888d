#!/usr/bin/env python3
"""Generate reference fixtures for the Swift ViT implementation.

Each fixture is a small safetensors file produced by timm's VisionTransformer:
initial parameters, an input batch, logits, cross-entropy loss and its
gradients, a soft-target loss check and a 5-step AdamW training trace.
vit_dropout*.safetensors run one training forward and backward with every dropout
and drop path on, timm's dropout modules replaced by masks the file stores, so that
vit can be fed the same masks. deit_dist.safetensors does the same for timm's VisionTransformerDistilled
(DeiT's distillation token and head_dist) trained with the token distillation
loss, and distill_losses.safetensors holds the three distillation losses with
their gradients and F.interpolate(mode="bilinear") resizes.

Precision: the initial parameters, inputs and soft targets are generated in
float32 (so they are exactly representable in the stored file), then every
computation runs in float64 (model.double()) and the results are rounded to
float32 only when stored. A float32 implementation can therefore be compared
against outputs that carry no float32 error of their own.

Usage: make_fixtures.py [OUTPUT_DIR]   (default: Tests/ViTTests/Fixtures)
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
from timm.models.vision_transformer import VisionTransformer
from timm.models.deit import VisionTransformerDistilled
from safetensors import safe_open
from safetensors.torch import save_file

LAYER_NORM_EPS = 1e-6  # timm's default LayerNorm eps for ViT

OPTIM = {
    "lr": 5e-3,
    "min_lr": 1e-4,
    "weight_decay": 0.05,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "warmup_steps": 2,
    "total_steps": 5,
    "schedule": "cosine",
    "grad_clip": 0.5,
    "label_smoothing": 0.1,
}

# name, seed, model config (Swift config key names), batch size.
# Seeds are chosen so the labels in each batch are not all the same class.
MODELS = [
    ("vit_cls", 2, {
        "image_size": 8, "patch_size": 4, "in_channels": 3, "num_classes": 5,
        "dim": 16, "depth": 2, "heads": 2, "mlp_dim": 32, "qkv_bias": True,
        "pool": "cls", "layer_norm_eps": LAYER_NORM_EPS,
    }, 3),
    ("vit_mean", 1, {
        "image_size": 12, "patch_size": 4, "in_channels": 1, "num_classes": 7,
        "dim": 16, "depth": 3, "heads": 4, "mlp_dim": 32, "qkv_bias": False,
        "pool": "mean", "layer_norm_eps": LAYER_NORM_EPS,
    }, 4),
]

NO_DECAY_NAMES = {"pos_embed", "cls_token", "dist_token"}


def build_model(cfg, rates=None):
    """timm VisionTransformer matching cfg, with timm's own initialisation; with
    cfg["distill_token"], timm's VisionTransformerDistilled (DeiT). `rates` (vit's dropout,
    attn_dropout, drop_path) sets timm's rates as vit's config maps them."""
    rates = rates or {"dropout": 0.0, "attn_dropout": 0.0, "drop_path": 0.0}
    model_class = VisionTransformerDistilled if cfg.get("distill_token", False) else VisionTransformer
    model = model_class(
        img_size=cfg["image_size"],
        patch_size=cfg["patch_size"],
        in_chans=cfg["in_channels"],
        num_classes=cfg["num_classes"],
        global_pool={"cls": "token", "mean": "avg"}[cfg["pool"]],
        embed_dim=cfg["dim"],
        depth=cfg["depth"],
        num_heads=cfg["heads"],
        mlp_ratio=cfg["mlp_dim"] / cfg["dim"],
        qkv_bias=cfg["qkv_bias"],
        class_token=True,
        drop_rate=rates["dropout"],
        pos_drop_rate=rates["dropout"],
        proj_drop_rate=rates["dropout"],
        attn_drop_rate=rates["attn_dropout"],
        drop_path_rate=rates["drop_path"],
    )
    # Sanity: structure is what the Swift side expects.
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            assert m.eps == cfg["layer_norm_eps"], m.eps
    assert model.blocks[0].mlp.fc1.out_features == cfg["mlp_dim"]
    if cfg["pool"] == "mean":
        assert isinstance(model.norm, nn.Identity)
        assert isinstance(model.fc_norm, nn.LayerNorm)
    else:
        assert isinstance(model.norm, nn.LayerNorm)
        assert isinstance(model.fc_norm, nn.Identity)
    return model


@torch.no_grad()
def perturb(model):
    """Make every parameter path non-trivial (timm zero-inits biases, LN is 1/0,
    cls_token std 1e-6). Done in float32 so values stay exactly representable."""
    ln_params = set()
    for mname, m in model.named_modules():
        if isinstance(m, nn.LayerNorm):
            for pname, _ in m.named_parameters(recurse=False):
                ln_params.add(f"{mname}.{pname}" if mname else pname)
    for name, p in model.named_parameters():
        if name in ln_params or name.endswith(".bias"):
            p.add_(torch.randn_like(p) * 0.1)
        elif name.endswith("attn.qkv.weight"):
            # timm's std 0.02 leaves q·k near 0 and the attention almost uniform, which would
            # let a wrong softmax or scale pass; std 0.25 gives O(1) scores and peaked rows.
            p.normal_(0.0, 0.25)
    model.cls_token.normal_(0.0, 0.02)


def lr_at(step):
    """Learning rate for optimizer step `step` (0-based): linear warmup, cosine."""
    base, min_lr = OPTIM["lr"], OPTIM["min_lr"]
    warm, total = OPTIM["warmup_steps"], OPTIM["total_steps"]
    if step < warm:
        return base * (step + 1) / warm
    p = (step - warm) / (total - warm)
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))


def param_groups(model):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim > 1 and name not in NO_DECAY_NAMES:
            decay.append(p)
        else:
            no_decay.append(p)
    return [
        {"params": decay, "weight_decay": OPTIM["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def ce_loss(logits, labels):
    return F.cross_entropy(logits, labels, label_smoothing=OPTIM["label_smoothing"])


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def canonicalize_header(path):
    """safetensors stores __metadata__ from a Rust HashMap, so its key order
    (and thus the file bytes) changes from run to run. Rewrite the JSON header
    in place with sorted metadata keys, same length (space padding is allowed
    by the format), so regenerating gives byte-identical files."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        old = f.read(n)
        header = json.loads(old)
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        new = json.dumps(header, separators=(",", ":")).encode("utf-8")
        assert len(new) <= n, "canonical header longer than original"
        f.seek(8)
        f.write(new + b" " * (n - len(new)))


def model_metadata(cfg, **extra):
    """The metadata of a model fixture: its config, the optimizer, anything `extra` adds (each
    value JSON-encoded), and the versions that made it."""
    metadata = {"model": json.dumps(cfg), "optim": json.dumps(OPTIM)}
    metadata.update({key: json.dumps(value) for key, value in extra.items()})
    metadata.update(timm_version=timm.__version__, torch_version=torch.__version__)
    return metadata


def write_fixture(out_dir, name, tensors, metadata):
    """Saves `tensors` as <out_dir>/<name>.safetensors with a canonical header, readable by all;
    returns the path."""
    path = os.path.join(out_dir, f"{name}.safetensors")
    save_file({n: t.contiguous() for n, t in tensors.items()}, path, metadata=metadata)
    canonicalize_header(path)
    os.chmod(path, 0o644)  # save_file creates it 0600
    return path


def run_trace(model, x, labels):
    """Train in place for total_steps on one batch; returns (losses, lrs, grad norms)."""
    opt = torch.optim.AdamW(
        param_groups(model), lr=OPTIM["lr"],
        betas=(OPTIM["beta1"], OPTIM["beta2"]), eps=OPTIM["eps"],
    )
    t_loss, t_lr, t_norm = [], [], []
    for step in range(OPTIM["total_steps"]):
        opt.zero_grad(set_to_none=True)
        loss = ce_loss(model(x), labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIM["grad_clip"])
        lr = lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        t_loss.append(loss.item())
        t_lr.append(lr)
        t_norm.append(float(norm))
    return t_loss, t_lr, t_norm


def make_fixture(name, seed, cfg, batch, out_dir):
    torch.manual_seed(seed)
    model = build_model(cfg)
    perturb(model)
    model.eval()  # no dropout anyway; eval() just makes that explicit

    c, s, k = cfg["in_channels"], cfg["image_size"], cfg["num_classes"]
    x32 = torch.randn(batch, c, s, s)
    labels = torch.randint(0, k, (batch,), dtype=torch.int64)
    assert labels.unique().numel() > 1, "pick another seed: all labels equal"
    soft32 = torch.softmax(torch.randn(batch, k), dim=-1)

    # Everything below in float64 from the exact float32 starting values.
    model = model.double()
    x = x32.double()
    soft_t = soft32.double()
    init_state = {n: p.detach().clone() for n, p in model.state_dict().items()}
    params = dict(model.named_parameters())
    assert set(init_state) == set(params), "state_dict has non-parameter entries"

    tensors = {"input": f32(x32), "labels": labels.clone()}
    for n, v in init_state.items():
        tensors[f"param.{n}"] = f32(v)

    # Forward / loss / gradients at the initial weights.
    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = ce_loss(logits, labels)
    loss.backward()
    tensors["logits"] = f32(logits)
    tensors["loss"] = f32(loss.reshape(1))
    for n, p in params.items():
        assert p.grad is not None, f"no gradient for {n}"
        tensors[f"grad.{n}"] = f32(p.grad)

    # Soft-target cross-entropy check (mixup/cutmix path).
    lg = logits.detach().clone().requires_grad_(True)
    soft_loss = (-(soft_t * F.log_softmax(lg, dim=-1)).sum(dim=-1)).mean()
    soft_loss.backward()
    tensors["soft.targets"] = f32(soft32)
    tensors["soft.loss"] = f32(soft_loss.reshape(1))
    tensors["soft.grad_logits"] = f32(lg.grad)

    # 5-step AdamW training trace from the same initial weights, same batch.
    model.load_state_dict(init_state)
    t_loss, t_lr, t_norm = run_trace(model, x, labels)
    assert abs(t_loss[0] - loss.item()) < 1e-12
    tensors["trace.loss"] = torch.tensor(t_loss, dtype=torch.float32)
    tensors["trace.lr"] = torch.tensor(t_lr, dtype=torch.float32)
    tensors["trace.grad_norm"] = torch.tensor(t_norm, dtype=torch.float32)
    for n, p in model.named_parameters():
        tensors[f"final.{n}"] = f32(p)

    path = write_fixture(out_dir, name, tensors, model_metadata(cfg))

    print(f"{name}: seed {seed}, batch {batch}, loss {loss.item():.6f}, "
          f"soft.loss {soft_loss.item():.6f}")
    print(f"  {'step':>4} {'lr':>10} {'loss':>10} {'grad_norm':>10} clipped")
    for i, (a, b, g) in enumerate(zip(t_lr, t_loss, t_norm)):
        print(f"  {i:>4} {a:>10.6f} {b:>10.6f} {g:>10.6f} "
              f"{'yes' if g > OPTIM['grad_clip'] else 'no'}")
    return path


def verify(path):
    """Re-load the file and check that float64 timm reproduces the stored outputs."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(meta["model"])
    optim = json.loads(meta["optim"])
    assert optim == OPTIM
    model = build_model(cfg).double()
    state = {k[len("param."):]: v.double() for k, v in tensors.items() if k.startswith("param.")}
    model.load_state_dict(state, strict=True)
    model.eval()
    x = tensors["input"].double()
    labels = tensors["labels"]
    assert labels.dtype == torch.int64
    logits = model(x)
    ref = tensors["logits"].double()
    err = (logits - ref).abs().max().item()
    tol = 1e-6 * max(1.0, ref.abs().max().item())
    assert err <= tol, f"{path}: logits mismatch {err}"
    loss = ce_loss(logits, labels)
    lerr = abs(loss.item() - tensors["loss"].item())
    assert lerr <= 1e-6, f"{path}: loss mismatch {lerr}"
    for k, v in tensors.items():
        if k != "labels":
            assert v.dtype == torch.float32, k
            assert torch.isfinite(v).all(), k
    # training trace re-run from the stored initial weights
    t_loss, _, t_norm = run_trace(model, x, labels)
    assert (torch.tensor(t_loss) - tensors["trace.loss"].double()).abs().max() < 1e-6
    assert (torch.tensor(t_norm) - tensors["trace.grad_norm"].double()).abs().max() < 1e-6
    for n, p in model.named_parameters():
        assert (p.detach() - tensors[f"final.{n}"].double()).abs().max() < 1e-6, n
    # soft targets rows sum to one; grad_logits rows sum to zero
    assert (tensors["soft.targets"].double().sum(-1) - 1).abs().max() < 1e-6
    assert tensors["soft.grad_logits"].double().sum(-1).abs().max() < 1e-7
    return len(tensors), os.path.getsize(path), err, cfg


# --- Distillation -------------------------------------------------------------------------

# DeiT's distilled ViT: the class and distillation tokens, pos_embed over both, head_dist.
DISTILLED = ("deit_dist", 3, {
    "image_size": 8, "patch_size": 4, "in_channels": 2, "num_classes": 4,
    "dim": 16, "depth": 2, "heads": 2, "mlp_dim": 32, "qkv_bias": True,
    "pool": "cls", "layer_norm_eps": LAYER_NORM_EPS, "distill_token": True,
}, 3)
# The label weight of the token loss; not 0.5, so that swapping the two heads shows.
DISTILLED_ALPHA = 0.3


def token_loss(outputs, labels, teacher_labels, alpha):
    """alpha·CE_ls(class head, labels) + (1 − alpha)·CE(distillation head, teacher argmax)."""
    logits_cls, logits_dist = outputs
    return alpha * ce_loss(logits_cls, labels) + (1 - alpha) * F.cross_entropy(logits_dist, teacher_labels)


def run_distilled_trace(model, x, labels, teacher_labels):
    """run_trace with the token loss on the two heads."""
    opt = torch.optim.AdamW(
        param_groups(model), lr=OPTIM["lr"],
        betas=(OPTIM["beta1"], OPTIM["beta2"]), eps=OPTIM["eps"],
    )
    t_loss, t_lr, t_norm = [], [], []
    for step in range(OPTIM["total_steps"]):
        opt.zero_grad(set_to_none=True)
        loss = token_loss(model(x), labels, teacher_labels, DISTILLED_ALPHA)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIM["grad_clip"])
        lr = lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        t_loss.append(loss.item())
        t_lr.append(lr)
        t_norm.append(float(norm))
    return t_loss, t_lr, t_norm


def make_distilled_fixture(out_dir):
    """The whole-model fixture for a distillation-token student: its training output (the two
    heads), its inference output (their mean), the token loss, every gradient, five AdamW steps."""
    name, seed, cfg, batch = DISTILLED
    torch.manual_seed(seed)
    model = build_model(cfg)
    perturb(model)
    with torch.no_grad():
        model.dist_token.normal_(0.0, 0.02)
    model.set_distilled_training(True)
    model.train()  # no dropout; train() makes timm return (x_cls, x_dist)

    c, s, k = cfg["in_channels"], cfg["image_size"], cfg["num_classes"]
    x32 = torch.randn(batch, c, s, s)
    labels = torch.randint(0, k, (batch,), dtype=torch.int64)
    teacher_labels = torch.randint(0, k, (batch,), dtype=torch.int64)
    assert labels.unique().numel() > 1 and (labels != teacher_labels).any(), "pick another seed"

    model = model.double()
    x = x32.double()
    init_state = {n: p.detach().clone() for n, p in model.state_dict().items()}
    params = dict(model.named_parameters())
    assert set(init_state) == set(params)
    tensors = {"input": f32(x32), "labels": labels.clone(), "teacher_labels": teacher_labels.clone()}
    for n, v in init_state.items():
        tensors[f"param.{n}"] = f32(v)

    model.zero_grad(set_to_none=True)
    logits_cls, logits_dist = model(x)
    loss = token_loss((logits_cls, logits_dist), labels, teacher_labels, DISTILLED_ALPHA)
    loss.backward()
    tensors["train.logits_cls"] = f32(logits_cls)
    tensors["train.logits_dist"] = f32(logits_dist)
    tensors["loss"] = f32(loss.reshape(1))
    for n, p in params.items():
        assert p.grad is not None, f"no gradient for {n}"
        tensors[f"grad.{n}"] = f32(p.grad)
    model.eval()
    with torch.no_grad():
        tensors["logits"] = f32(model(x))  # inference: (x_cls + x_dist) / 2
    model.train()

    model.load_state_dict(init_state)
    t_loss, t_lr, t_norm = run_distilled_trace(model, x, labels, teacher_labels)
    assert abs(t_loss[0] - loss.item()) < 1e-12
    tensors["trace.loss"] = torch.tensor(t_loss, dtype=torch.float32)
    tensors["trace.lr"] = torch.tensor(t_lr, dtype=torch.float32)
    tensors["trace.grad_norm"] = torch.tensor(t_norm, dtype=torch.float32)
    for n, p in model.named_parameters():
        tensors[f"final.{n}"] = f32(p)

    path = write_fixture(out_dir, name, tensors, model_metadata(cfg, distill={"type": "token", "alpha": DISTILLED_ALPHA}))
    print(f"{name}: seed {seed}, batch {batch}, token loss {loss.item():.6f}, "
          f"trace {' '.join(f'{v:.5f}' for v in t_loss)}")
    return path


# Each case: type, temperature, alpha, whether the label loss uses mixup targets.
LOSS_CASES = [
    ("soft", {"type": "soft", "temperature": 3.0, "alpha": 0.3, "mixup": False}),
    ("soft_t1_kl_only", {"type": "soft", "temperature": 1.0, "alpha": 0.0, "mixup": False}),
    ("soft_mixup", {"type": "soft", "temperature": 2.0, "alpha": 0.6, "mixup": True}),
    ("hard", {"type": "hard", "temperature": 3.0, "alpha": 0.3, "mixup": False}),
    ("hard_mixup", {"type": "hard", "temperature": 3.0, "alpha": 0.7, "mixup": True}),
    ("token", {"type": "token", "temperature": 3.0, "alpha": 0.3, "mixup": False}),
    ("token_mixup", {"type": "token", "temperature": 3.0, "alpha": 0.7, "mixup": True}),
]
LOSS_BATCH, LOSS_CLASSES = 5, 6
# (name, input height, input width, output height, output width)
RESIZES = [("up", 7, 7, 12, 12), ("down", 12, 12, 5, 5), ("mixed", 6, 9, 11, 4), ("same", 5, 5, 5, 5)]


def distillation_loss(case, student, dist, teacher, labels, targets):
    """The loss vit distill minimizes, written with PyTorch's own functions:
    soft:  alpha·base(student) + (1 − alpha)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)), batch mean
    hard:  alpha·base(student) + (1 − alpha)·CE(student, argmax teacher)
    token: alpha·base(class head) + (1 − alpha)·CE(distillation head, argmax teacher)
    base is the label loss of vit train: label-smoothed CE, or soft-target CE under mixup."""
    if case["mixup"]:
        base = (-(targets * F.log_softmax(student, dim=-1)).sum(dim=-1)).mean()
    else:
        base = ce_loss(student, labels)
    alpha, t = case["alpha"], case["temperature"]
    if case["type"] == "soft":
        kd = F.kl_div(F.log_softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1),
                      reduction="batchmean") * t * t
    elif case["type"] == "hard":
        kd = F.cross_entropy(student, teacher.argmax(dim=-1))
    else:
        kd = F.cross_entropy(dist, teacher.argmax(dim=-1))
    return alpha * base + (1 - alpha) * kd


def make_loss_fixture(out_dir):
    """distill_losses.safetensors: each loss and its gradients, and bilinear resizes."""
    torch.manual_seed(7)
    b, k = LOSS_BATCH, LOSS_CLASSES
    student32 = torch.randn(b, k) * 2
    dist32 = torch.randn(b, k) * 2
    teacher32 = torch.randn(b, k) * 3
    labels = torch.randint(0, k, (b,), dtype=torch.int64)
    targets32 = torch.softmax(torch.randn(b, k) * 2, dim=-1)
    # The teacher disagrees with the labels somewhere, so hard distillation differs from CE.
    assert (teacher32.argmax(dim=-1) != labels).any()
    tensors = {"student": student32, "dist": dist32, "teacher": teacher32, "labels": labels, "targets": targets32}
    for name, case in LOSS_CASES:
        student = student32.double().requires_grad_(True)
        dist = dist32.double().requires_grad_(True)
        loss = distillation_loss(case, student, dist, teacher32.double(), labels, targets32.double())
        loss.backward()
        tensors[f"{name}.loss"] = f32(loss.reshape(1))
        tensors[f"{name}.grad_student"] = f32(student.grad)
        if case["type"] == "token":
            tensors[f"{name}.grad_dist"] = f32(dist.grad)
        else:
            assert dist.grad is None
        print(f"distill_losses {name}: loss {loss.item():.6f}")
    for name, h, w, oh, ow in RESIZES:
        x32 = torch.randn(2, 3, h, w)
        y = F.interpolate(x32.double(), size=(oh, ow), mode="bilinear", align_corners=False, antialias=False)
        tensors[f"resize.{name}.input"] = x32
        tensors[f"resize.{name}.output"] = f32(y)
    metadata = {
        "cases": json.dumps(dict(LOSS_CASES)),
        "label_smoothing": json.dumps(OPTIM["label_smoothing"]),
        "torch_version": torch.__version__,
    }
    return write_fixture(out_dir, "distill_losses", tensors, metadata)


def verify_distilled(path, losses_path):
    """Re-run the distilled model and the losses from the stored inputs in float64."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(meta["model"])
    model = build_model(cfg).double()
    state = {k[len("param."):]: v.double() for k, v in tensors.items() if k.startswith("param.")}
    model.load_state_dict(state, strict=True)
    model.eval()
    x = tensors["input"].double()
    with torch.no_grad():
        err = (model(x) - tensors["logits"].double()).abs().max().item()
    assert err < 1e-6, f"{path}: inference logits mismatch {err}"
    model.set_distilled_training(True)
    model.train()
    t_loss, _, _ = run_distilled_trace(model, x, tensors["labels"], tensors["teacher_labels"])
    assert (torch.tensor(t_loss) - tensors["trace.loss"].double()).abs().max() < 1e-6
    for n, p in model.named_parameters():
        assert (p.detach() - tensors[f"final.{n}"].double()).abs().max() < 1e-6, n

    with safe_open(losses_path, framework="pt") as f:
        loss_tensors = {k: f.get_tensor(k) for k in f.keys()}
    for name, case in LOSS_CASES:
        loss = distillation_loss(case, loss_tensors["student"].double(), loss_tensors["dist"].double(),
                                 loss_tensors["teacher"].double(), loss_tensors["labels"],
                                 loss_tensors["targets"].double())
        assert abs(loss.item() - loss_tensors[f"{name}.loss"].item()) < 1e-6, name
    return len(tensors), os.path.getsize(path), err


# --- Dropout and drop path -------------------------------------------------------------

# name, seed, model config, batch: every dropout of timm's ViT at vit's `dropout` rate (timm's
# drop_rate, pos_drop_rate and proj_drop_rate), attention dropout, and drop path (linspace over
# the blocks, so block 0 has none).
DROPOUT_RATES = {"dropout": 0.2, "attn_dropout": 0.25, "drop_path": 0.5}
DROPOUT_MODELS = [
    ("vit_dropout", 4, dict(MODELS[0][2]), 4),
    ("vit_dropout_mean", 5, dict(MODELS[1][2], depth=3), 4),
    ("vit_dropout_dist", 6, dict(DISTILLED[2]), 3),
]


class StoredMasks(nn.Module):
    """Stands in for one of timm's Dropout or DropPath modules: multiplies its input by the next
    stored mask (a module may run more than once per forward: head_drop on x and x_dist)."""

    def __init__(self, name, masks):
        super().__init__()
        self.name, self.masks, self.calls = name, masks, 0

    def forward(self, x):
        if not self.training:
            return x
        mask = self.masks[self.calls]
        self.calls += 1
        assert mask.shape == x.shape[:mask.dim()], f"{self.name}: mask {tuple(mask.shape)} for input {tuple(x.shape)}"
        return x * mask.double().reshape(mask.shape + (1,) * (x.dim() - mask.dim()))


def dropout_masks(generator, rate, shape, count=1):
    """Inverted-dropout factors (0 or 1/(1 - rate)) in float32, each mask with zeros and non-zeros."""
    masks = []
    for _ in range(count):
        while True:
            keep = (torch.rand(shape, generator=generator) >= rate).to(torch.float32)
            if 0 < keep.sum() < keep.numel():
                break
        masks.append(keep * torch.tensor(1 / (1 - rate), dtype=torch.float32))
    return masks


def install_masks(model, cfg, batch, seed):
    """Replaces every dropout and drop-path module of `model` with stored masks; returns them
    under the fixture's names (mask.<timm module>) and checks that no dropout module is left."""
    g = torch.Generator().manual_seed(seed)
    rate, attn_rate = DROPOUT_RATES["dropout"], DROPOUT_RATES["attn_dropout"]
    t = (cfg["image_size"] // cfg["patch_size"]) ** 2 + (2 if cfg.get("distill_token", False) else 1)
    c, m, nh = cfg["dim"], cfg["mlp_dim"], cfg["heads"]
    path_rates = [x.item() for x in torch.linspace(0, DROPOUT_RATES["drop_path"], cfg["depth"])]
    stored = {}

    def replace(owner, attribute, name, expected_rate, shape, count=1):
        module = getattr(owner, attribute)
        if isinstance(module, nn.Dropout):
            assert module.p == expected_rate, (name, module.p)
        else:
            assert type(module).__name__ == "DropPath" and abs(module.drop_prob - expected_rate) < 1e-12, (name, module)
        masks = dropout_masks(g, expected_rate, shape, count)
        setattr(owner, attribute, StoredMasks(name, masks))
        stored[name] = torch.stack(masks) if count > 1 else masks[0]

    replace(model, "pos_drop", "pos_drop", rate, (batch, t, c))
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}."
        block.attn.fused_attn = False  # the explicit softmax path, where attn_drop runs
        replace(block.attn, "attn_drop", p + "attn.attn_drop", attn_rate, (batch, nh, t, t))
        replace(block.attn, "proj_drop", p + "attn.proj_drop", rate, (batch, t, c))
        replace(block.mlp, "drop1", p + "mlp.drop1", rate, (batch, t, m))
        replace(block.mlp, "drop2", p + "mlp.drop2", rate, (batch, t, c))
        for path in ["drop_path1", "drop_path2"]:
            if path_rates[i] > 0:
                replace(block, path, p + path, path_rates[i], (batch,))
            else:
                # timm leaves a zero-rate drop path out (Identity); vit multiplies by 1.
                assert isinstance(getattr(block, path), nn.Identity), (p + path)
                stored[p + path] = torch.ones(batch)
    heads = 2 if cfg.get("distill_token", False) else 1
    replace(model, "head_drop", "head_drop", rate, (batch, c), count=heads)
    left = [n for n, mod in model.named_modules() if isinstance(mod, nn.Dropout) or type(mod).__name__ == "DropPath"]
    assert not left, f"dropout modules not replaced: {left}"
    return stored


def make_dropout_fixture(name, seed, cfg, batch, out_dir):
    """One training forward and backward with all dropouts and drop path on, from stored masks."""
    torch.manual_seed(seed)
    model = build_model(cfg, DROPOUT_RATES)
    perturb(model)
    if cfg.get("distill_token", False):
        with torch.no_grad():
            model.dist_token.normal_(0.0, 0.02)
    c, s, k = cfg["in_channels"], cfg["image_size"], cfg["num_classes"]
    x32 = torch.randn(batch, c, s, s)
    labels = torch.randint(0, k, (batch,), dtype=torch.int64)
    assert labels.unique().numel() > 1, "pick another seed: all labels equal"
    masks = install_masks(model, cfg, batch, seed + 100)
    model = model.double()
    model.train()
    tensors = {"input": f32(x32), "labels": labels.clone()}
    for n, v in model.state_dict().items():
        tensors[f"param.{n}"] = f32(v)
    for n, v in masks.items():
        tensors[f"mask.{n}"] = v.contiguous()

    model.zero_grad(set_to_none=True)
    logits = model(x32.double())
    for module in model.modules():
        if isinstance(module, StoredMasks):
            assert module.calls == len(module.masks), f"{module.name}: {module.calls} calls"
    loss = ce_loss(logits, labels)
    loss.backward()
    tensors["logits"] = f32(logits)
    tensors["loss"] = f32(loss.reshape(1))
    for n, p in model.named_parameters():
        tensors[f"grad.{n}"] = f32(p.grad)
    # Without the masks (eval) the logits differ: the masks matter.
    model.eval()
    with torch.no_grad():
        assert (model(x32.double()) - logits).abs().max() > 1e-3
    path = write_fixture(out_dir, name, tensors, model_metadata(cfg, dropout=DROPOUT_RATES))
    print(f"{name}: seed {seed}, batch {batch}, loss {loss.item():.6f}, {len(masks)} masks, {os.path.getsize(path)} bytes")
    return path


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "Tests", "ViTTests", "Fixtures")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)  # keep float64 reductions in a fixed order
    print(f"torch {torch.__version__}, timm {timm.__version__}")
    paths = [make_fixture(n, seed, cfg, b, out_dir) for n, seed, cfg, b in MODELS]

    print("\nverification (float64 re-run from param.* vs stored logits)")
    print(f"  {'file':<22} {'tensors':>7} {'bytes':>8} {'max|dlogits|':>13}")
    for p in paths:
        count, size, err, _ = verify(p)
        print(f"  {os.path.basename(p):<22} {count:>7} {size:>8} {err:>13.3e}")
    for n, seed, cfg, b in DROPOUT_MODELS:
        make_dropout_fixture(n, seed, cfg, b, out_dir)
    distilled = make_distilled_fixture(out_dir)
    losses = make_loss_fixture(out_dir)
    count, size, err = verify_distilled(distilled, losses)
    print(f"  {os.path.basename(distilled):<22} {count:>7} {size:>8} {err:>13.3e}")
    print(f"  {os.path.basename(losses):<22} {'':>7} {os.path.getsize(losses):>8}")
    print("OK")


if __name__ == "__main__":
    main()
