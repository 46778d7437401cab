"""Training and evaluation of the vision network (used by vision.py and its tests)."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from ._vision_data import CLASSES, NC, VisionData, planes
from ._vision_net import VisionNet

ARCH_KEYS = ("dim", "depth", "heads", "mlp_ratio", "dec")


def make_model(hp: dict, size: int) -> VisionNet:
    return VisionNet(size=size, **{k: hp[k] for k in ARCH_KEYS})


def to_input(x_uint8: np.ndarray | torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 [N,S,S] → float32 [N,1,S,S] = (v/255 − mean)/std (the daemon's normalisation)."""
    t = torch.as_tensor(np.asarray(x_uint8)).float().unsqueeze(1)
    return (t / 255.0 - mean) / std


def _loss(seg: torch.Tensor, img: torch.Tensor, tgt: torch.Tensor, lab: torch.Tensor, pos_weight: float,
          dice_w: float = 1.0):
    """BCE (positives up-weighted: defects cover a fraction of a percent of the pixels) + soft Dice per class present
    + image-level BCE. seg: logits at S/4; targets max-pooled to S/4 (a cell is positive when any pixel is)."""
    logits = seg
    tgt = F.adaptive_max_pool2d(tgt, seg.shape[-2:])
    # class-balanced BCE: mean over positive cells + mean over negative cells (positives are ~0.1 % of the cells,
    # a plain mean would hardly see them); pos_weight scales the positive half
    raw = F.binary_cross_entropy_with_logits(logits, tgt, reduction="none")
    npos = tgt.sum()
    bce = pos_weight * (raw * tgt).sum() / npos.clamp(min=1.0) + (raw * (1 - tgt)).sum() / (tgt.numel() - npos)
    p = torch.sigmoid(logits)
    inter = (p * tgt).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + tgt.sum((0, 2, 3))
    present = tgt.sum((0, 2, 3)) > 0
    dice = 1 - (2 * inter + 1) / (denom + 1)
    dice = dice[present].mean() if present.any() else p.mean() * 0
    img_bce = F.binary_cross_entropy_with_logits(img, lab)
    return bce + dice_w * dice + img_bce


def train_model(
    hp: dict,
    data: VisionData,
    mean: float,
    std: float,
    *,
    seed: int,
    epochs: float,
    log=None,
    max_seconds: float | None = None,
) -> tuple[VisionNet, dict]:
    """AdamW + one-cycle cosine schedule; augmentation: horizontal flip, brightness/contrast jitter, small shifts.
    Returns (model in eval mode, {"steps", "seconds", "final_loss"})."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    size = data.x.shape[-1]
    model = make_model(hp, size)
    model.train()
    bs = int(hp.get("batch", 16))
    n = len(data)
    steps = max(1, int(round(epochs * n / bs)))
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp.get("weight_decay", 0.05))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=steps, pct_start=0.15)
    t0 = time.perf_counter()
    losses = []
    order = rng.permutation(n)
    pos = 0
    step = 0
    for step in range(steps):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = np.sort(order[pos : pos + bs])
        pos += bs
        x = torch.from_numpy(data.x[idx]).float()
        bits = torch.from_numpy(data.bits[idx])
        crop = int(hp.get("crop", 0))
        if crop and crop < size:
            x, bits = _crops(x, bits, crop, rng)
        if rng.random() < 0.5:
            x, bits = x.flip(-1), bits.flip(-1)
        # photometric jitter around the frame mean (exposure / backlight drift)
        gain = torch.from_numpy(rng.uniform(0.85, 1.15, (len(idx), 1, 1))).float()
        offs = torch.from_numpy(rng.uniform(-12, 12, (len(idx), 1, 1))).float()
        m = x.mean((1, 2), keepdim=True)
        x = ((x - m) * gain + m + offs).clamp(0, 255)
        # small vertical/horizontal shifts (the item is not always centred)
        dy, dx = (int(v) for v in rng.integers(-6, 7, 2))
        x, bits = torch.roll(x, (dy, dx), (1, 2)), torch.roll(bits, (dy, dx), (1, 2))
        inp = ((x / 255.0 - mean) / std).unsqueeze(1)
        tgt = planes(bits)
        lab = (planes(bits).amax((2, 3)) > 0).float()  # classes present in the (cropped) frame
        seg, img = model.forward_logits(inp)
        loss = _loss(seg, img, tgt, lab, hp.get("pos_weight", 10.0), hp.get("dice", 1.0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % max(1, steps // 10) == 0:
            log(f"vision: step {step + 1}/{steps} loss {np.mean(losses[-20:]):.4f} ({time.perf_counter() - t0:.0f} s)")
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            if log:
                log(f"vision: time budget {max_seconds:.0f} s reached at step {step + 1}/{steps}")
            break
    model.eval()
    return model, {"steps": step + 1, "planned_steps": steps, "seconds": round(time.perf_counter() - t0, 1),
                   "final_loss": float(np.mean(losses[-20:]))}


def _crops(x: torch.Tensor, bits: torch.Tensor, crop: int, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """crop×crop windows (multiples of 16 px): 50 % centred near a random defect pixel, the rest anywhere."""
    n, size = x.shape[0], x.shape[-1]
    xs, bs = [], []
    for i in range(n):
        ys, xs_ = torch.nonzero(bits[i], as_tuple=True)
        if len(ys) and rng.random() < 0.5:
            k = int(rng.integers(len(ys)))
            cy = int(ys[k]) + int(rng.integers(-crop // 3, crop // 3 + 1))
            cx = int(xs_[k]) + int(rng.integers(-crop // 3, crop // 3 + 1))
        else:
            cy, cx = (int(v) for v in rng.integers(crop // 2, size - crop // 2 + 1, 2))
        y0 = min(max(cy - crop // 2, 0), size - crop)
        x0 = min(max(cx - crop // 2, 0), size - crop)
        xs.append(x[i, y0 : y0 + crop, x0 : x0 + crop])
        bs.append(bits[i, y0 : y0 + crop, x0 : x0 + crop])
    return torch.stack(xs), torch.stack(bs)


@torch.no_grad()
def predict(model: VisionNet, x: np.ndarray, mean: float, std: float, batch: int = 32):
    """Yields (start, masks [b,8,S,S] float32 probabilities, scores [b,8])."""
    model.eval()
    for s in range(0, len(x), batch):
        masks, scores = model(to_input(x[s : s + batch], mean, std))
        yield s, masks, scores


THRESHOLD_GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)


@torch.no_grad()
def pixel_thresholds(model: VisionNet, data: VisionData, mean: float, std: float) -> dict:
    """Per class, the mask threshold (from THRESHOLD_GRID) with the best IoU on ``data`` (validation frames)."""
    g = torch.tensor(THRESHOLD_GRID).view(-1, 1, 1, 1, 1)
    inter = np.zeros((len(THRESHOLD_GRID), NC))
    union = np.zeros((len(THRESHOLD_GRID), NC))
    for s, masks, _ in predict(model, data.x, mean, std):
        tgt = planes(data.bits[s : s + len(masks)]) > 0
        pred = masks.unsqueeze(0) > g  # [T,B,8,S,S]
        inter += (pred & tgt).sum((1, 3, 4)).numpy()
        union += (pred | tgt).sum((1, 3, 4)).numpy()
    iou = inter / np.maximum(union, 1)
    best = iou.argmax(0)
    return {"thresholds": [float(THRESHOLD_GRID[b]) for b in best],
            "val_iou_at_best": [float(iou[b, c]) for c, b in enumerate(best)],
            "val_iou_at_0_5": [float(v) for v in iou[0]]}


@torch.no_grad()
def fold_thresholds(model: VisionNet, thresholds: list[float]) -> None:
    """Moves the per-class mask thresholds into the network: the class-c pixel logits are shifted by −logit(th_c),
    so masks > 0.5 is the calibrated decision; the image logits are compensated (α_c · shift) so the scores stay
    exactly what they were."""
    th = torch.tensor(thresholds, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
    shift = torch.log(th / (1 - th))
    model.seg.bias -= shift
    model.cls.bias += model.alpha * shift


def _auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, s))


def evaluate(model: VisionNet, data: VisionData, mean: float, std: float, threshold: float = 0.5) -> dict:
    """Per-class IoU over the whole set (Σ intersection / Σ union at model resolution, masks thresholded),
    per-class image AUROC (scores vs class present), and the same IoU and a per-defect hit rate for images whose
    class-c pixels are few (small defects, ≤ SMALL_AREA_PX px at model resolution)."""
    inter = np.zeros(NC)
    union = np.zeros(NC)
    s_inter = np.zeros(NC)
    s_union = np.zeros(NC)
    s_hit = np.zeros(NC)
    s_n = np.zeros(NC)
    scores = np.zeros((len(data), NC), np.float32)
    for s, masks, sc in predict(model, data.x, mean, std):
        b = len(sc)
        scores[s : s + b] = sc.numpy()
        pred = (masks > threshold).numpy()
        tgt = planes(data.bits[s : s + b]).numpy() > 0
        i = (pred & tgt).sum((2, 3))
        u = (pred | tgt).sum((2, 3))
        inter += i.sum(0)
        union += u.sum(0)
        small = data.small[s : s + b] > 0  # [b,8]
        s_inter += (i * small).sum(0)
        s_union += (u * small).sum(0)
        s_n += small.sum(0)
        s_hit += ((i > 0) & small).sum(0)
    iou = {c: (float(inter[k] / union[k]) if union[k] > 0 else None) for k, c in enumerate(CLASSES)}
    auroc = {c: _auroc(data.labels[:, k], scores[:, k]) for k, c in enumerate(CLASSES)}
    small_iou = {c: (float(s_inter[k] / s_union[k]) if s_union[k] > 0 else None) for k, c in enumerate(CLASSES)}
    small_hit = {c: (float(s_hit[k] / s_n[k]) if s_n[k] > 0 else None) for k, c in enumerate(CLASSES)}

    def mean_of(d):
        v = [x for x in d.values() if x is not None]
        return float(np.mean(v)) if v else None

    return {
        "n_images": int(len(data)),
        "iou": iou,
        "mean_iou": mean_of(iou),
        "image_auroc": auroc,
        "mean_image_auroc": mean_of(auroc),
        "small_defects": {
            "images_per_class": {c: int(s_n[k]) for k, c in enumerate(CLASSES)},
            "iou": small_iou,
            "mean_iou": mean_of(small_iou),
            "hit_rate": small_hit,
            "mean_hit_rate": mean_of(small_hit),
        },
        "pixel_iou_all_classes": float(inter.sum() / union.sum()) if union.sum() > 0 else None,
    }


def baseline_metrics(train: VisionData, test: VisionData) -> dict:
    """Honest non-learned baselines on the same test set:
    * image scores: |frame − per-pixel median of clean training frames| summed → one anomaly score for every class
      (a defect-agnostic difference detector), AUROC per class;
    * masks: the same difference thresholded at the value maximising IoU on the training set (all classes alike),
      IoU per class."""
    clean = train.x[train.labels.sum(1) == 0]
    if len(clean) < 4:
        clean = train.x
    ref = np.median(clean[:400].astype(np.float32), axis=0)
    def diff(x):
        return np.abs(x.astype(np.float32) - ref)
    # threshold chosen on training frames (union over classes)
    tr = diff(train.x[:300])
    anyc = train.bits[:300] > 0
    best_t, best = 10.0, -1.0
    for t in (6, 10, 15, 20, 30, 40, 60):
        p = tr > t
        v = (p & anyc).sum() / max(1, (p | anyc).sum())
        if v > best:
            best_t, best = float(t), float(v)
    inter = np.zeros(NC)
    union = np.zeros(NC)
    score = np.zeros(len(test), np.float32)
    for s in range(0, len(test), 64):
        d = diff(test.x[s : s + 64])
        score[s : s + 64] = np.sort(d.reshape(len(d), -1), 1)[:, -50:].mean(1)
        p = d > best_t
        tgt = planes(test.bits[s : s + 64]).numpy() > 0
        inter += (p[:, None] & tgt).sum((0, 2, 3))
        union += (p[:, None] | tgt).sum((0, 2, 3))
    iou = {c: (float(inter[k] / union[k]) if union[k] > 0 else None) for k, c in enumerate(CLASSES)}
    auroc = {c: _auroc(test.labels[:, k], score) for k, c in enumerate(CLASSES)}
    vi = [v for v in iou.values() if v is not None]
    va = [v for v in auroc.values() if v is not None]
    return {
        "kind": "median clean frame difference",
        "threshold": best_t,
        "iou": iou,
        "mean_iou": float(np.mean(vi)) if vi else None,
        "image_auroc": auroc,
        "mean_image_auroc": float(np.mean(va)) if va else None,
    }
