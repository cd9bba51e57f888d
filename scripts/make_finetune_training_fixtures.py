"""Writes the fine-tuning fixtures of Tests/ViTTests/Fixtures with timm (run from the repo root
with the reference venv: /tmp/peer/bin/python scripts/make_finetune_training_fixtures.py).

- layer_decay.json: timm's `param_groups_layer_decay` (through `create_optimizer_v2`'s
  arguments: weight decay 0.05, the model's `no_weight_decay()` list, layer decay 0.75) of three
  depth-12 ViTs (class-token pooling, mean pooling, DeiT distilled): each parameter's lr_scale and
  weight_decay.
- ema.safetensors: a tiny ViT's parameters through 20 synthetic updates (`states` [21, n], the
  state dict flattened in order) and the weights of two `ModelEmaV3` averages after timm's
  train loop called `update(model, step=k)` for k = 1...20: `ema.plain` (decay 0.9) and
  `ema.warmup` (decay 0.999, use_warmup=True).
"""
import json

import torch
from safetensors.torch import save_file
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from timm.optim._param_groups import param_groups_layer_decay
from timm.utils.model_ema import ModelEmaV3

FIXTURES = "Tests/ViTTests/Fixtures/"


def layer_decay_groups(model, decay):
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups_layer_decay(model, weight_decay=0.05, no_weight_decay_list=model.no_weight_decay(),
                                      layer_decay=decay)
    table = {}
    for group in groups:
        for p in group["params"]:
            table[names[id(p)]] = {"lr_scale": group["lr_scale"], "weight_decay": group["weight_decay"]}
    return table


def main():
    torch.manual_seed(0)
    common = dict(img_size=8, patch_size=4, in_chans=3, num_classes=5, embed_dim=16, depth=12, num_heads=2, mlp_ratio=2.0)
    models = {
        "cls": (VisionTransformer(**common), dict(pool="cls", distill_token=False)),
        "mean": (VisionTransformer(**common, global_pool="avg", class_token=True), dict(pool="mean", distill_token=False)),
        "distilled": (VisionTransformerDistilled(**common), dict(pool="cls", distill_token=True)),
    }
    out = {"layer_decay": 0.75, "weight_decay": 0.05, "models": {}}
    for key, (model, settings) in models.items():
        out["models"][key] = dict(settings, depth=12, params=layer_decay_groups(model, 0.75))
    with open(FIXTURES + "layer_decay.json", "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")

    torch.manual_seed(1)
    model = VisionTransformer(img_size=8, patch_size=4, in_chans=3, num_classes=3, embed_dim=8, depth=1, num_heads=2, mlp_ratio=2.0)
    plain = ModelEmaV3(model, decay=0.9)
    warm = ModelEmaV3(model, decay=0.999, use_warmup=True)
    flat = lambda m: torch.cat([v.reshape(-1) for v in m.state_dict().values()])
    states = [flat(model)]
    with torch.no_grad():
        for k in range(1, 21):
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
            plain.update(model, step=k)
            warm.update(model, step=k)
            states.append(flat(model))
    save_file({"states": torch.stack(states).contiguous(), "ema.plain": flat(plain.module).contiguous(),
               "ema.warmup": flat(warm.module).contiguous()}, FIXTURES + "ema.safetensors")


if __name__ == "__main__":
    main()
