"""Train BMN (paper configuration) on the synthetic corpus, with the fast BM form.

    python models/train.py                      # generates data if missing, trains, evaluates
    python models/train.py --resume             # continue from models/work/train/last.pt
    python models/train.py --mode rescale       # whole video rescaled to T (ActivityNet)
    python models/train.py --device cuda

Defaults: train split ``synth.py --seed 1 --videos 40``, validation ``--seed 2 --videos
12`` (generated into ``models/work/data/`` when absent); windows of T = 100 snippets with
50 % overlap; losses of bmn-spec section 5; Adam lr 1e-3 -> 1e-4 after epoch 7 (of 9),
weight decay 1e-4, batch 16. With ``--minutes M`` training stops once M minutes have
passed (checkpoint saved), and the learning rate drops at 7/9 of the budget if epoch 7 has
not come by then. Checkpoints: ``models/work/train/last.pt`` (every epoch and every few
minutes, resumable mid-epoch) and ``best.pt`` (best validation AUC).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bmn import BMN  # noqa: E402
from evaluate import (ar_an, cut_window, load_split, rescale_video,  # noqa: E402
                      video_proposals, window_starts)

from paths import WORK  # noqa: E402


# --------------------------------------------------------------------------------------
# labels (bmn-spec section 5)
# --------------------------------------------------------------------------------------

def make_labels(segs: np.ndarray, T: int, D: int):
    """segs [G, 2] in window-normalised time -> (iou_map [D, T], start [T], end [T])."""
    iou_map = np.zeros((D, T), np.float32)
    start = np.zeros(T, np.float32)
    end = np.zeros(T, np.float32)
    if len(segs) == 0:
        return iou_map, start, end
    d, s = np.meshgrid(np.arange(D), np.arange(T), indexing="ij")
    pmin, pmax = s / T, (s + d + 1) / T
    for g0, g1 in segs:
        inter = np.clip(np.minimum(pmax, g1) - np.maximum(pmin, g0), 0, None)
        union = (pmax - pmin) + (g1 - g0) - inter
        iou_map = np.maximum(iou_map, (inter / union).astype(np.float32))
    a0 = np.arange(T) / T
    a1 = (np.arange(T) + 1) / T
    half = 1.5 / T
    for g0, g1 in segs:
        for c, out in ((g0, start), (g1, end)):
            r0, r1 = c - half, c + half
            ioa = np.clip(np.minimum(a1, r1) - np.maximum(a0, r0), 0, None) / (a1 - a0)
            np.maximum(out, ioa.astype(np.float32), out=out)
    return iou_map, start, end


def build_windows(gt, feats, T: int, D: int, mode: str, min_overlap: float = 0.5):
    """All training samples: x [W, C, T] float32, iou [W, D, T], start [W, T], end [W, T].

    Window mode: hop T/2; an instance belongs to a window when at least ``min_overlap`` of
    it lies inside; its segment is clipped to the window.
    """
    xs, labels = [], []
    for vid, x in feats.items():
        info = gt["database"][vid]
        n = x.shape[0]
        period = float(info.get("snippet_period_second", info["duration_second"] / n))
        segs = np.array([a["segment"] for a in info["annotations"]], float).reshape(-1, 2)
        segs = segs / period                                   # snippet units
        if mode == "window":
            for s0 in window_starts(n, T, T // 2):
                lo, hi = s0, s0 + T
                inside = np.clip(np.minimum(segs[:, 1], hi) - np.maximum(segs[:, 0], lo), 0, None)
                keep = (inside > 0) & (inside >= min_overlap * (segs[:, 1] - segs[:, 0]))
                w = (np.clip(segs[keep], lo, hi) - lo) / T
                xs.append(cut_window(x, s0, T).T)
                labels.append(make_labels(w, T, D))
        else:
            xs.append(rescale_video(x, T).T)
            labels.append(make_labels(np.clip(segs / n, 0, 1), T, D))
    ious, sts, ens = zip(*labels)
    return (np.ascontiguousarray(np.stack(xs)).astype(np.float32), np.stack(ious),
            np.stack(sts), np.stack(ens))


# --------------------------------------------------------------------------------------
# losses (bmn-spec section 5)
# --------------------------------------------------------------------------------------

EPS = 1e-6


def binary_logistic(pred, gt, threshold, mask=None):
    """Weighted binary logistic loss; ratio = entries / positives clamped to [1.05, 21]."""
    pred, gt = pred.reshape(-1), gt.reshape(-1)
    m = torch.ones_like(gt) if mask is None else mask.reshape(-1)
    pos = (gt > threshold).float() * m
    neg = (1.0 - (gt > threshold).float()) * m
    num_entries = m.sum()
    num_pos = pos.sum()
    ratio = (num_entries / num_pos.clamp(min=1.0)).clamp(1.05, 21.0)
    coef_pos = 0.5 * ratio
    coef_neg = 0.5 * ratio / (ratio - 1.0)
    loss = coef_pos * pos * torch.log(pred + EPS) + coef_neg * neg * torch.log(1.0 - pred + EPS)
    return -loss.sum() / num_entries.clamp(min=1.0)


def pem_reg_loss(pred, gt, mask, gen: torch.Generator):
    """L2 on IoU > 0.7 plus random 1:1:1 subsamples of (0.3, 0.7] and (0, 0.3]."""
    h = (gt > 0.7).float() * mask
    mid = ((gt <= 0.7) & (gt > 0.3)).float() * mask
    low = ((gt <= 0.3) & (gt > 0.0)).float() * mask
    n_h, n_m, n_l = h.sum(), mid.sum(), low.sum()
    u_m = torch.rand(gt.shape, generator=gen, device="cpu").to(gt.device)
    u_l = torch.rand(gt.shape, generator=gen, device="cpu").to(gt.device)
    r_m = n_h / n_m.clamp(min=1.0)
    r_l = n_h / n_l.clamp(min=1.0)
    sel_m = mid * (u_m < r_m).float()
    sel_l = low * (u_l < r_l).float()
    w = h + sel_m + sel_l
    se = (pred - gt) ** 2
    return 0.5 * (se * w).sum() / w.sum().clamp(min=1.0)


def bmn_loss(conf, start, end, gt_iou, gt_start, gt_end, valid, gen):
    tem = binary_logistic(start, gt_start, 0.5) + binary_logistic(end, gt_end, 0.5)
    m = valid.expand_as(gt_iou)
    reg = pem_reg_loss(conf[:, 0], gt_iou, m, gen)
    cls = binary_logistic(conf[:, 1], gt_iou, 0.9, m)
    return tem + 10.0 * reg + cls, (tem.item(), reg.item(), cls.item())


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------

def ensure_data(path: str, seed: int, videos: int, subset: str):
    if os.path.exists(os.path.join(path, "ground_truth.json")):
        return
    from synth import generate
    print(f"generating {path}: seed {seed}, {videos} videos", flush=True)
    generate(seed, videos, path, subset)


def set_seeds(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save(path, **state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def evaluate_auc(model, gt, feats, mode, device):
    model.eval()
    res = video_proposals(model, gt, feats, mode=mode, device=device)
    model.train()
    return ar_an(gt, res)


def main(argv=None):
    ap = argparse.ArgumentParser(description="train BMN on the synthetic corpus")
    ap.add_argument("--train-data", default=os.path.join(WORK, "data", "train"))
    ap.add_argument("--val-data", default=os.path.join(WORK, "data", "val"))
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--train-videos", type=int, default=40)
    ap.add_argument("--val-seed", type=int, default=2)
    ap.add_argument("--val-videos", type=int, default=12)
    ap.add_argument("--out", default=os.path.join(WORK, "train"))
    ap.add_argument("--mode", choices=["window", "rescale"], default="window")
    ap.add_argument("--variant", choices=["pytorch", "paddle"], default="pytorch")
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--lr-drop-epoch", type=int, default=7)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget")
    ap.add_argument("--eval-every", type=int, default=3, help="epochs between val AUC")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--max-steps", type=int, default=None, help="debug: stop after N steps")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    set_seeds(args.seed)
    device = torch.device(args.device)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()

    ensure_data(args.train_data, args.train_seed, args.train_videos, "training")
    ensure_data(args.val_data, args.val_seed, args.val_videos, "validation")
    gt_tr, f_tr = load_split(args.train_data)
    gt_va, f_va = load_split(args.val_data)

    feat_dim = next(iter(f_tr.values())).shape[1]           # C from the data (400 synthetic)
    model = BMN(variant=args.variant, feat_dim=feat_dim, form="fast").to(device)
    if device.type == "cpu":
        model.pem_2d.to(memory_format=torch.channels_last)
    T, D = model.tscale, model.dscale
    X, IOU, ST, EN = build_windows(gt_tr, f_tr, T, D, args.mode)
    n_win = len(X)
    steps_per_epoch = math.ceil(n_win / args.batch)
    print(f"train windows {n_win} ({steps_per_epoch} steps/epoch), val videos {len(f_va)}",
          flush=True)
    d_idx, s_idx = np.meshgrid(np.arange(D), np.arange(T), indexing="ij")
    valid = torch.from_numpy(((s_idx + d_idx) <= T - 1).astype(np.float32))[None].to(device)

    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.wd)
    gen = torch.Generator().manual_seed(args.seed + 1)
    epoch, step_in_epoch, best_auc, history, elapsed_prev = 0, 0, -1.0, [], 0.0
    lr_dropped = False
    last_path, best_path = os.path.join(args.out, "last.pt"), os.path.join(args.out, "best.pt")
    if args.resume and os.path.exists(last_path):
        ck = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        epoch, step_in_epoch = ck["epoch"], ck["step_in_epoch"]
        best_auc, history = ck["best_auc"], ck["history"]
        elapsed_prev, lr_dropped = ck["elapsed"], ck["lr_dropped"]
        gen.set_state(ck["gen_state"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at epoch {epoch} step {step_in_epoch}, {elapsed_prev / 60:.1f} min "
              f"already spent", flush=True)

    def elapsed():
        return elapsed_prev + time.time() - t_start

    def checkpoint(path, extra=None):
        save(path, model=model.state_dict(), optimizer=opt.state_dict(), epoch=epoch,
             step_in_epoch=step_in_epoch, best_auc=best_auc, history=history,
             elapsed=elapsed(), lr_dropped=lr_dropped, gen_state=gen.get_state(),
             torch_rng=torch.get_rng_state(), config=model.config, args=vars(args),
             **(extra or {}))

    def set_lr(lr):
        for g in opt.param_groups:
            g["lr"] = lr

    from tqdm import tqdm
    budget = args.minutes * 60 if args.minutes else None
    stop = False
    last_ck = time.time()
    steps_done = 0
    while epoch < args.epochs and not stop:
        if epoch >= args.lr_drop_epoch and not lr_dropped:
            lr_dropped = True
        set_lr(args.lr * (0.1 if lr_dropped else 1.0))
        perm = np.random.default_rng([args.seed, epoch]).permutation(n_win)
        model.train()
        bar = tqdm(range(step_in_epoch, steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}",
                   initial=step_in_epoch, total=steps_per_epoch, mininterval=10,
                   file=sys.stdout, dynamic_ncols=False, ncols=110)
        run = [0.0, 0.0, 0.0, 0.0, 0]
        for step in bar:
            idx = perm[step * args.batch:(step + 1) * args.batch]
            x = torch.from_numpy(X[idx]).to(device)
            g_iou = torch.from_numpy(IOU[idx]).to(device)
            g_st = torch.from_numpy(ST[idx]).to(device)
            g_en = torch.from_numpy(EN[idx]).to(device)
            conf, start, end = model(x)
            loss, parts = bmn_loss(conf, start, end, g_iou, g_st, g_en, valid, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run[0] += loss.item(); run[1] += parts[0]; run[2] += parts[1]; run[3] += parts[2]
            run[4] += 1
            step_in_epoch = step + 1
            steps_done += 1
            bar.set_postfix(loss=f"{run[0] / run[4]:.3f}", tem=f"{run[1] / run[4]:.3f}",
                            reg=f"{run[2] / run[4]:.4f}", cls=f"{run[3] / run[4]:.3f}",
                            lr=f"{opt.param_groups[0]['lr']:.0e}")
            if budget and not lr_dropped and elapsed() > budget * args.lr_drop_epoch / args.epochs:
                lr_dropped = True
                set_lr(args.lr * 0.1)
                print(f"\nlr -> {args.lr * 0.1:g} at {elapsed() / 60:.1f} min (budget)", flush=True)
            if time.time() - last_ck > args.ckpt_minutes * 60:
                checkpoint(last_path)
                last_ck = time.time()
            if (budget and elapsed() > budget) or (args.max_steps and steps_done >= args.max_steps):
                stop = True
                break
        bar.close()
        finished_epoch = step_in_epoch >= steps_per_epoch
        rec = {"epoch": epoch + 1, "steps": step_in_epoch, "minutes": round(elapsed() / 60, 2),
               "loss": run[0] / max(run[4], 1), "tem": run[1] / max(run[4], 1),
               "reg": run[2] / max(run[4], 1), "cls": run[3] / max(run[4], 1)}
        if finished_epoch:
            epoch += 1
            step_in_epoch = 0
        do_eval = (finished_epoch and (epoch % args.eval_every == 0 or epoch == args.epochs)) or stop
        if do_eval:
            t0 = time.time()
            metrics = evaluate_auc(model, gt_va, f_va, args.mode, device)
            rec.update({k: round(v, 3) for k, v in metrics.items()})
            rec["eval_seconds"] = round(time.time() - t0, 1)
            if metrics["AUC"] > best_auc:
                best_auc = metrics["AUC"]
                history.append(rec)
                checkpoint(best_path, {"val_metrics": metrics})
            else:
                history.append(rec)
        else:
            history.append(rec)
        checkpoint(last_path)
        last_ck = time.time()
        print(json.dumps(rec), flush=True)
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    print(f"done: {elapsed() / 60:.1f} min, best val AUC {best_auc:.2f}", flush=True)


if __name__ == "__main__":
    main()
