#!/usr/bin/env python3
"""PyTorch reference for bench/models.ts: the same architectures, shapes and per-thread measurement.

    python3 bench/pytorch_reference.py --architecture lstm --vocab 5000 --events 6 --features 2 \
        --embedding 32 --hidden 64 --dense 32 --length 50 --train-batch 256 --score-batch 1024 --seconds 3

Prints one JSON object: torch version, threads, and training and scoring sequences per second.
The networks mirror worker/model/network.ts:
  lstm:       [item emb, event emb, features] -> LSTM -> last hidden -> Linear+ReLU -> Linear (logit)
  attention:  same LSTM, all hidden states H; per product query q: softmax(H q / sqrt(units)) pools H;
              [pooled, pooled * q, q] -> Linear+ReLU -> Linear (one logit per product)
Training: Adam, binary cross-entropy on logits with per-entry weights; scoring: sigmoid under inference_mode.
"""
import argparse
import json
import math
import time

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.architecture = a.architecture
        self.item = nn.Embedding(a.vocab, a.embedding)
        self.event = nn.Embedding(a.events, a.embedding)
        self.lstm = nn.LSTM(2 * a.embedding + a.features, a.hidden, batch_first=True)
        width = 3 * a.hidden if a.architecture == "attention" else a.hidden
        self.dense = nn.Linear(width, a.dense)
        self.out = nn.Linear(a.dense, 1)
        if a.architecture == "attention":
            self.query = nn.Embedding(a.products, a.hidden)
        self.hidden = a.hidden

    def forward(self, items, events, features):
        x = torch.cat([self.item(items), self.event(events), features], dim=-1)
        states, (h, _) = self.lstm(x)
        if self.architecture == "lstm":
            return self.out(torch.relu(self.dense(h[-1]))).squeeze(-1)  # [N]
        q = self.query.weight  # [P, H]
        scores = torch.einsum("nth,ph->npt", states, q) / math.sqrt(self.hidden)
        pooled = torch.einsum("npt,nth->nph", torch.softmax(scores, dim=-1), states)
        qb = q.unsqueeze(0).expand_as(pooled)
        joined = torch.cat([pooled, pooled * qb, qb], dim=-1)
        return self.out(torch.relu(self.dense(joined))).squeeze(-1)  # [N, P]


def batch(a, n, g):
    items = torch.randint(2, a.vocab, (n, a.length), generator=g)
    events = torch.randint(2, a.events, (n, a.length), generator=g)
    features = torch.rand(n, a.length, a.features, generator=g)
    outputs = (n, a.products) if a.architecture == "attention" else (n,)
    labels = (torch.rand(*outputs, generator=g) < 0.1).float()
    return items, events, features, labels


def timed(step, seconds, min_reps=3):
    step()  # warm-up
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < seconds:
        step()
        reps += 1
    return reps, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--architecture", choices=["lstm", "attention"], default="lstm")
    p.add_argument("--vocab", type=int, default=5000)
    p.add_argument("--events", type=int, default=6)
    p.add_argument("--features", type=int, default=2)
    p.add_argument("--embedding", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dense", type=int, default=32)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--products", type=int, default=20)
    p.add_argument("--train-batch", type=int, default=256)
    p.add_argument("--score-batch", type=int, default=1024)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(7)
    net = Net(a)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")

    items, events, features, labels = batch(a, a.train_batch, g)
    weights = torch.where(labels > 0, torch.full_like(labels, 2.0), torch.ones_like(labels))

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = (loss_fn(net(items, events, features), labels) * weights).mean()
        loss.backward()
        optimizer.step()

    net.train()
    reps, seconds = timed(train_step, a.seconds)
    train = reps * a.train_batch / seconds

    s_items, s_events, s_features, _ = batch(a, a.score_batch, g)
    net.eval()

    def score_step():
        with torch.inference_mode():
            torch.sigmoid(net(s_items, s_events, s_features))

    reps, seconds = timed(score_step, a.seconds)
    score = reps * a.score_batch / seconds

    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "architecture": a.architecture,
        "train_seq_per_s": train,
        "score_seq_per_s": score,
    }))


if __name__ == "__main__":
    main()
